/**
 * The scoring use case: one stream record's text in, a scored event (with its point and,
 * when critical, its alert) or a rejection reason out. Pure: no I/O, no clock.
 */
import { type Alert, toAlert } from "./alert/alert.ts";
import type { CampaignSettings } from "./alert/campaign.ts";
import type { Config } from "./config.ts";
import { normalise } from "./event/normalise.ts";
import type { WafEvent } from "./event/types.ts";
import { type IpAs, SINGLE_STREAM, type StreamPosition, toPointLine } from "./metrics/point.ts";
import type { PrivacyConfig } from "./privacy/privacy.ts";
import { type MaliciousSource, Reputation } from "./scoring/reputation.ts";
import { DEFAULT_SCORING, type Score, type ScoringConfig, scoreEvent } from "./scoring/score.ts";

export interface ScorerSettings {
  maxRecordBytes: number;
  scoring: ScoringConfig;
  reputation: Reputation;
  privacy: PrivacyConfig;
  /** Campaign alerts (`CAMPAIGN_WINDOW_S`, `CAMPAIGN_MIN_EVENTS`; 0 turns them off). */
  campaigns: CampaignSettings;
  /** `INFLUX_IP_AS`: the client address as a tag (default) or as a field beside `client_net`. */
  ipAs?: IpAs;
  /** `STREAM_SHARDS`: entry IDs are unique per shard only, which times the point. */
  shards?: number;
}

export type ScoredRecord =
  | { ok: true; event: WafEvent; score: Score }
  | { ok: false; reason: string };

/** Normalises and scores one record's text. Never throws. */
export function scoreRecord(text: string, settings: ScorerSettings): ScoredRecord {
  const n = normalise(text, { maxRecordBytes: settings.maxRecordBytes });
  if (!n.ok) return n;
  return {
    ok: true,
    event: n.event,
    score: scoreEvent(n.event, settings.scoring, settings.reputation),
  };
}

export interface RecordOutputs {
  /** The InfluxDB point, as one line of line protocol. */
  line: string;
  /** Present only for a critical, non-allowlisted event. */
  alert: Alert | undefined;
}

/** The point and alert of a scored record (reference §4); `streamId` times events without their own. */
export function outputsOf(
  scored: { event: WafEvent; score: Score },
  streamId: string | undefined,
  privacy: PrivacyConfig,
  ipAs: IpAs = "tag",
  shard: StreamPosition = SINGLE_STREAM,
): RecordOutputs {
  return {
    line: toPointLine(scored.event, scored.score, streamId, privacy, ipAs, shard),
    alert: scored.score.alert ? toAlert(scored.event, scored.score, streamId, privacy) : undefined,
  };
}

/**
 * Scorer settings from validated config. `extraMalicious` holds the entries of
 * `MALICIOUS_IPS_FILE`, read by the caller (core does no I/O).
 */
export function scorerSettingsFrom(
  config: Config,
  extra: { maliciousEntries?: string[]; sources?: MaliciousSource[] } = {},
): ScorerSettings {
  return {
    maxRecordBytes: config.MAX_RECORD_BYTES,
    scoring: {
      weights: config.SCORING_WEIGHTS,
      thresholds: config.SEVERITY_THRESHOLDS,
      reputationPoints: DEFAULT_SCORING.reputationPoints,
      profile: config.SCORING_PROFILE,
    },
    reputation: Reputation.fromLists({
      malicious: [...config.MALICIOUS_IPS, ...(extra.maliciousEntries ?? [])],
      allowlist: config.ALLOWLIST_IPS,
      extraSources: extra.sources,
    }),
    privacy: { ipMasking: config.IP_MASKING, ipHashKey: config.IP_HASH_KEY },
    campaigns: { windowSeconds: config.CAMPAIGN_WINDOW_S, minEvents: config.CAMPAIGN_MIN_EVENTS },
    ipAs: config.INFLUX_IP_AS,
    shards: config.STREAM_SHARDS,
  };
}
