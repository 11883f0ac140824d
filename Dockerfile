# The project's two images, one target each, built from the repository root (context "."):
#
#   reader   the stream reader's Fargate task (infra/reader.ts builds it: `target: "reader"`)
#   shipper  `waf ship` as a container: a sidecar next to nginx/Apache + ModSecurity (or Coraza)
#            that shares the audit-log volume
#
#   docker build --target shipper -t waf-ship .
#   docker run -d --name waf-ship \
#     -v /var/log/modsec:/var/log/modsec:ro -v waf-ship-state:/var/lib/waf-ship \
#     --group-add "$(stat -c %g /var/log/modsec/audit.log)" \
#     -e REDIS_URL=rediss://:PASSWORD@redis.example:6380 -e STREAM_SHARDS=1 \
#     waf-ship '/var/log/modsec/audit.log*'
#
# Checked by reading only (Docker does not run where it was written); its build commands are the
# ones the tests run (`scripts/build.mjs reader` for the reader's bundle, `scripts/build.mjs cli`
# behind bin/waf.js). Each image runs its bundle on a slim Node 22 with no node_modules; BuildKit
# builds only the stages the chosen target needs.
FROM public.ecr.aws/docker/library/node:22-bookworm-slim AS source
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json ./
COPY core ./core
COPY cli ./cli
COPY functions ./functions
COPY local ./local
COPY scripts/build.mjs ./scripts/build.mjs

FROM source AS reader-build
RUN node scripts/build.mjs reader

# One ESM entry split per command, dependencies included, the live view's page beside it; moved
# out of its hashed directory.
FROM source AS shipper-build
RUN node scripts/build.mjs cli \
 && mv "dist/$(node -p 'require("./dist/cli.json").dir')" /waf

FROM public.ecr.aws/docker/library/node:22-bookworm-slim AS reader
ENV NODE_ENV=production HEALTH_PORT=8080
WORKDIR /app
COPY --from=reader-build /src/dist/reader/ ./
USER node
EXPOSE 8080
# SIGTERM (ECS stop) drains in-flight batches before exit; keep ECS stopTimeout above the drain budget.
STOPSIGNAL SIGTERM
# A small young generation and a bounded old one keep RSS flat under a large backlog
# (docs/benchmarks.md: ~220 → ~140 MB at batch 1000); the limit covers the worst case the stage
# table allows (infra/stages.ts READER_HEAP_MB). local/stack.ts runs the same flags.
CMD ["node", "--enable-source-maps", "--max-semi-space-size=8", "--max-old-space-size=768", "main.mjs"]

FROM public.ecr.aws/docker/library/node:22-bookworm-slim AS shipper
ENV NODE_ENV=production
WORKDIR /app
COPY --from=shipper-build /waf/ ./
# The checkpoint lives on a volume: a new container resumes where the old one stopped.
RUN mkdir -p /var/lib/waf-ship && chown node:node /var/lib/waf-ship
VOLUME /var/lib/waf-ship
# Reading the logs needs their group (--group-add, see above) or a world-readable log.
USER node
# SIGTERM: stop reading, send what was read, write the checkpoint, exit 0 within ~5 s
# (docker stop waits 10 s; a SIGKILL after that loses nothing, it only re-sends).
STOPSIGNAL SIGTERM
# Health: set SHIP_HEALTH_PORT (e.g. 9101) and probe http://127.0.0.1:9101/healthz from inside
# the container (ECS container health check, `docker run --health-cmd`); pass
# --health-host 0.0.0.0 (before the paths) for a probe from outside (a Kubernetes httpGet).
ENTRYPOINT ["node", "/app/main.js", "ship", "--state", "/var/lib/waf-ship/state.json"]
# The audit logs to follow (quoted globs are expanded by waf ship itself, on every scan).
CMD ["/var/log/modsec/audit.log*"]
