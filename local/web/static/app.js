// The live view's client. Every value shown comes from attackers' requests (URIs, IPs, rule
// ids): it is only ever put into the page as text (textContent / text nodes), never as HTML.

const $ = (id) => document.getElementById(id);

/** An element with text children; attributes are set one by one, never parsed as markup. */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else node.setAttribute(k, String(v));
  }
  for (const c of children) {
    node.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
  }
  return node;
}

const str = (v) => (v == null || v === "" ? "–" : String(v));
const num = (v) => (typeof v === "number" && Number.isFinite(v) ? v.toLocaleString("en-US") : "–");
const LEVELS = ["critical", "high", "medium", "low"];
const levelClass = (l) => (LEVELS.includes(l) ? `lvl lvl-${l}` : "lvl");

function utc(seconds) {
  const n = Number(seconds);
  if (!Number.isFinite(n) || n <= 0) return "–";
  return new Date(n * 1000).toISOString().slice(0, 19).replace("T", " ");
}

function setText(id, value) {
  const node = $(id);
  if (node) node.textContent = value;
}

function bars(container, items) {
  const max = Math.max(1, ...items.map((i) => i.count));
  container.replaceChildren(
    ...items.map((i) => {
      const fill = el("span", { class: `fill ${i.cls || ""}` });
      // CSSOM, not an inline style attribute: allowed by the page's CSP.
      fill.style.width = `${(100 * i.count) / max}%`;
      return el(
        "div",
        { class: "bar", "data-key": i.label },
        el("span", { class: "bar-label" }, i.label),
        el("span", { class: "track" }, fill),
        el("span", { class: "bar-count" }, num(i.count)),
      );
    }),
  );
}

function rankedRows(tbody, ranked, max) {
  tbody.replaceChildren(
    ...ranked.map((r) => {
      const fill = el("span", { class: "fill" });
      fill.style.width = `${(100 * r.count) / Math.max(1, max)}%`;
      return el(
        "tr",
        {},
        el("td", { class: "mono" }, str(r.key)),
        el("td", { class: "count" }, el("span", { class: "track small" }, fill), num(r.count)),
        el("td", {}, num(r.maxSeverity)),
        el("td", {}, (r.categories || []).map(String).join(", ") || "–"),
      );
    }),
  );
  if (ranked.length === 0) {
    tbody.replaceChildren(el("tr", {}, el("td", { colspan: 4, class: "muted" }, "none")));
  }
}

let seen = new Set();
let firstRender = true;

function renderAlerts(recent) {
  const tbody = $("alerts").tBodies[0];
  const nextSeen = new Set();
  const rows = recent.map((a) => {
    const key = `${str(a.tx_id)}|${str(a.listed_at)}`;
    nextSeen.add(key);
    const level = String(a.severity_level || "");
    const cats = Array.isArray(a.categories) ? a.categories.map(String).join(", ") : "";
    const row = el(
      "tr",
      { class: !firstRender && !seen.has(key) ? "fresh" : "" },
      el("td", { class: "mono nowrap" }, utc(a.timestamp)),
      el("td", {}, el("span", { class: levelClass(level) }, str(level))),
      el("td", { class: "num" }, str(a.severity)),
      el("td", { class: "mono" }, str(a.client_ip)),
      el("td", { class: "mono" }, str(a.rule_id)),
      el("td", {}, str(cats)),
      el("td", {}, str(a.method)),
      el("td", { class: "mono uri", title: str(a.uri) }, str(a.uri)),
      el("td", { class: "mono tx" }, str(a.tx_id)),
    );
    return row;
  });
  tbody.replaceChildren(...rows);
  $("alerts-empty").hidden = rows.length > 0;
  seen = nextSeen;
  firstRender = false;
}

function render(s) {
  const conn = $("connection");
  const banner = $("banner");
  if (s.redis && !s.redis.ok) {
    conn.dataset.state = "error";
    conn.textContent = "Redis unreachable";
    banner.hidden = false;
    banner.textContent = `Cannot read Redis (${str(s.redis.error)}); showing the last data received.`;
  } else {
    conn.dataset.state = "live";
    conn.textContent = "live";
    banner.hidden = true;
  }
  setText("source", `Redis ${str(s.redis?.label)}`);
  setText("updated", new Date(s.generatedAt).toISOString().slice(11, 19));
  if (s.stream) {
    setText("stream-length", num(s.stream.length));
    setText("lag", s.stream.groupExists ? num(s.stream.lag) : "no group");
    setText("pending", num(s.stream.pending));
    // The scorer's own count when it keeps one, else what the consumer group finished.
    const rate = s.scored ? s.scored.perSecond : s.stream.donePerS;
    setText("rate", rate == null ? "–" : num(Math.round(rate)));
    $("lag").parentElement.classList.toggle("warn", (s.stream.lag || 0) > 1000);
    // Sharded streams: each shard's lag and pending (the tiles show the totals).
    const shards = s.stream.shards || [];
    $("shards").hidden = shards.length < 2;
    setText(
      "shards",
      shards.length < 2
        ? ""
        : `${shards.length} shards: ${shards.map((x) => `${str(x.key)} lag ${num(x.lag)}, pending ${num(x.pending)}`).join(" · ")}`,
    );
  }
  if (s.dlq) {
    setText("dlq", num(s.dlq.length));
    $("dlq").parentElement.classList.toggle("warn", s.dlq.length > 0);
  }
  if (s.alerts) {
    setText("alerts-total", num(s.alerts.total));
    renderAlerts(s.alerts.recent || []);
  }
  if (s.scored) {
    setText("events-hour", num(s.scored.events));
    bars(
      $("levels"),
      LEVELS.map((l) => ({ label: l, count: s.scored.byLevel[l] || 0, cls: `lvl-${l}` })),
    );
  }
  const h = s.lastHour;
  if (h) {
    setText("alerts-hour", num(h.alerts) + (h.truncated ? "+" : ""));
    bars(
      $("severity"),
      h.bySeverity.map((b) => ({ label: b.label, count: b.count })),
    );
    const maxIp = Math.max(1, ...h.topIps.map((r) => r.count));
    const maxRule = Math.max(1, ...h.topRules.map((r) => r.count));
    rankedRows($("top-ips").tBodies[0], h.topIps, maxIp);
    rankedRows($("top-rules").tBodies[0], h.topRules, maxRule);
  }
  document.title = `WAF live view · ${num(s.alerts ? s.alerts.total : 0)} alerts`;
  document.body.dataset.ready = "true";
}

function disconnected() {
  const conn = $("connection");
  conn.dataset.state = "error";
  conn.textContent = "view server unreachable, retrying…";
}

async function poll() {
  try {
    const res = await fetch("/api/summary", { cache: "no-store" });
    render(await res.json());
  } catch {
    disconnected();
  }
}

function start() {
  poll();
  if (typeof EventSource === "function") {
    const source = new EventSource("/api/events");
    source.onmessage = (e) => render(JSON.parse(e.data));
    source.onerror = () => disconnected(); // EventSource reconnects by itself
  } else {
    setInterval(poll, 2000);
  }
}

start();
