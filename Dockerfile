# Clawfleet: one Dockerfile for every role. A shared base (Node, production dependencies,
# compiled code, SQL migrations, Lua scripts, and the compiled demo project from examples/ as the
# image's default project) and thin role stages on top:
#
#   docker buildx build --target planner \
#     --build-arg NODE_VERSION="$(cat .nvmrc)" \
#     --build-arg NODE_DIGEST="$(docker buildx imagetools inspect "node:$(cat .nvmrc)-bookworm-slim" --format '{{json .Manifest.Digest}}' | tr -d '"')" \
#     -t clawfleet:planner .
#
# Targets: planner, executor, rate-gateway, api (api+intake), checkpoint, metrics, tools (the
# project's own Moleculer services); base (the runtime and the demo, no SERVICES); builder (full
# dependencies and dist/, where CI runs the tests inside the image).
#
# The project: the runtime finds agents, the project's services and the simulated model's scripted
# policies through CLAWFLEET_PROMPTS_DIR, CLAWFLEET_USER_SERVICES and CLAWFLEET_SIM_POLICIES. Here
# they name the demo (examples/order-router, examples/inventory-mcp), compiled to JavaScript under
# /app/examples. Your own project builds FROM this base (target `base`), adds its compiled agent
# files and services in a folder of its own under /app, and points the same variables at it:
#
#   FROM clawfleet/base:<tag>
#   COPY build/ /app/project/
#   ENV CLAWFLEET_PROMPTS_DIR=/app/project/prompts \
#       CLAWFLEET_USER_SERVICES=/app/project/services/*.service.js \
#       CLAWFLEET_SIM_POLICIES=/app/project/sim/policies.js
#
# and runs SERVICES=tools for its services beside the role images. Under /app (with no package.json
# of its own there) `clawfleet` and `clawfleet/mixins` resolve to the runtime by Node's package
# self-reference (package.json's name and exports), as they do for the demo.
#
# The base image is pinned by digest, not only by tag: a tag such as 22.23.3-bookworm-slim is
# re-pushed with every Debian security rebuild, so the same Dockerfile would silently produce a
# different image on another day. The digest is what staging tested and what production runs;
# bumping it is a reviewed change (the release workflow resolves it and records it). Both ARGs are
# required and have no default: without them the FROM reference is invalid and the build fails.
# NODE_VERSION must equal .nvmrc (checked below), the version the test suites run under.
#
# No `# syntax=` line: BuildKit's built-in Dockerfile frontend handles everything used here
# (RUN --mount=type=cache and type=secret), whereas a frontend image named by tag would be pulled
# from a registry at every build: the one input not pinned by digest, and a build that fails
# where no registry is reachable (CI builds offline, .ci/images.sh).
ARG NODE_VERSION
ARG NODE_DIGEST

# ---------------------------------------------------------------------------------------------
# builder: every dependency (dev included), compiled with tsc.
FROM node:${NODE_VERSION}-bookworm-slim@${NODE_DIGEST} AS builder
ARG NODE_VERSION
WORKDIR /app
COPY .nvmrc package.json package-lock.json ./
# The image's Node is the one .nvmrc names, and the ARG says so too: a mismatch fails the build.
RUN test -n "$NODE_VERSION" \
 && test "$(node -v)" = "v$NODE_VERSION" \
 && test "$(cat .nvmrc)" = "$NODE_VERSION" \
 || { echo "Node $(node -v) in the image, NODE_VERSION=$NODE_VERSION, .nvmrc=$(cat .nvmrc): they must agree" >&2; exit 1; }
# Behind a TLS-intercepting proxy, the proxy's CA comes in as the build secret build_ca
# (docker build --secret id=build_ca,src=<pem>): mounted for the npm ci step only, in no layer.
RUN --mount=type=cache,target=/root/.npm --mount=type=secret,id=build_ca \
    if [ -s /run/secrets/build_ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/build_ca; fi \
 && npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json moleculer.config.ts ./
COPY bin ./bin
COPY app ./app
COPY mixins ./mixins
COPY services ./services
COPY src ./src
# Compiled code reads non-TypeScript files at run time from <root>/src (tsc copies none of them):
# collect every .sql and .lua under src/ and the dashboard's files (src/dashboard/assets: the page, its
# modules, stylesheet and icon) with their paths, for the runtime stages.
RUN npx tsc -p tsconfig.build.json \
 && mkdir -p /runtime-assets \
 && find src -type f \( -name '*.sql' -o -name '*.lua' -o -path 'src/dashboard/assets/*' \) -exec cp --parents {} /runtime-assets/ \;
# The demo project, compiled as a user's project would be: CommonJS that imports `clawfleet` and
# `clawfleet/mixins` by name (examples/tsconfig.json maps them to the sources for type-checking
# only; at run time they resolve to /app/dist by self-reference). Only the examples' own output is
# kept, at the paths of its sources, beside their non-TypeScript files (agent files under prompts/,
# .sql migrations, the .mjs MCP server): a service's __dirname-relative paths hold in the image.
COPY examples ./examples
RUN npx tsc -p examples/tsconfig.json --outDir /examples-build --rootDir . --noEmit false \
      --module node16 --moduleResolution node16 --declaration false --sourceMap false \
 && mkdir -p /project \
 && cp -r /examples-build/examples /project/examples \
 && find examples \( -path '*/prompts/*.md' -o -name '*.sql' -o -name '*.mjs' \) -exec cp --parents {} /project/ \; \
 && rm -rf /examples-build

# ---------------------------------------------------------------------------------------------
# prod-deps: production dependencies only; optional ones (PGlite, embedded mode only) left out.
FROM node:${NODE_VERSION}-bookworm-slim@${NODE_DIGEST} AS prod-deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm --mount=type=secret,id=build_ca \
    if [ -s /run/secrets/build_ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/build_ca; fi \
 && npm ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund

# ---------------------------------------------------------------------------------------------
# base: what every role runs. No compiler, no npm (nor its cache), no package manager at all:
# nothing can be installed at start-up. Files are root-owned and read-only to the runtime user,
# so the root filesystem can be mounted read-only; /tmp is the only place written to.
FROM node:${NODE_VERSION}-bookworm-slim@${NODE_DIGEST} AS base
ARG NODE_VERSION
# Debian's apt and dpkg go too (their database in /var/lib/dpkg stays, for image scanners).
RUN test "$(node -v)" = "v$NODE_VERSION" \
 && rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack \
           /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack \
           /usr/local/bin/yarn /usr/local/bin/yarnpkg /opt/yarn-* /root/.npm /tmp/* \
           /usr/bin/apt* /usr/bin/dpkg* /usr/lib/apt /etc/apt /var/lib/apt /var/cache/apt
# The default project is the demo (see the top of this file to run your own).
ENV NODE_ENV=production \
    HOME=/tmp \
    PORT=3000 \
    CLAWFLEET_LOG_FORMAT=json \
    CLAWFLEET_PROMPTS_DIR=/app/examples/*/prompts \
    CLAWFLEET_USER_SERVICES=/app/examples/*/services/*.service.js \
    CLAWFLEET_SIM_POLICIES=/app/examples/order-router/sim/policies.js
WORKDIR /app
COPY package.json ./
COPY --from=prod-deps /app/node_modules ./node_modules
COPY --from=builder /app/dist ./dist
COPY --from=builder /runtime-assets/src ./src
COPY bin ./bin
COPY --from=builder /project/examples ./examples
# A numeric user, so Kubernetes' runAsNonRoot can verify it without a passwd lookup.
USER 10001:10001
EXPOSE 3000
# Slim images have no curl: Node asks /health/live itself.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "require('http').get({host:'127.0.0.1',port:process.env.PORT||3000,path:'/health/live',timeout:2500},r=>process.exit(r.statusCode===200?0:1)).on('error',()=>process.exit(1)).on('timeout',()=>process.exit(1))"]
ENTRYPOINT ["node", "bin/clawfleet.js"]
CMD ["start"]

# ---------------------------------------------------------------------------------------------
# Role images: the base plus a default SERVICES and labels. No file layers of their own, so all
# seven share every layer and a node pulling a second role downloads nothing.
FROM base AS planner
ENV SERVICES=planner
LABEL org.opencontainers.image.title="clawfleet-planner" io.clawfleet.role="planner"

FROM base AS executor
ENV SERVICES=executor
LABEL org.opencontainers.image.title="clawfleet-executor" io.clawfleet.role="executor"

FROM base AS rate-gateway
ENV SERVICES=rate-gateway
LABEL org.opencontainers.image.title="clawfleet-rate-gateway" io.clawfleet.role="rate-gateway"

FROM base AS api
ENV SERVICES=api,intake
LABEL org.opencontainers.image.title="clawfleet-api" io.clawfleet.role="api"

FROM base AS checkpoint
ENV SERVICES=checkpoint
LABEL org.opencontainers.image.title="clawfleet-checkpoint" io.clawfleet.role="checkpoint"

FROM base AS metrics
ENV SERVICES=metrics
LABEL org.opencontainers.image.title="clawfleet-metrics" io.clawfleet.role="metrics"

# The project's own Moleculer services (CLAWFLEET_USER_SERVICES; here the order-router's tools).
FROM base AS tools
ENV SERVICES=tools
LABEL org.opencontainers.image.title="clawfleet-tools" io.clawfleet.role="tools"
