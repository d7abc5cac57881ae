# kube-iptables-tailer: the node agent image.
#
#   docker build -t kube-iptables-tailer:0.1.0 .
#   buildah bud --isolation chroot -t kube-iptables-tailer:0.1.0 .
#
# Behind an HTTPS-intercepting proxy, hand its CA to npm without baking it into any layer:
#   docker build --secret id=extra_ca,src=/path/to/ca.pem ...   (buildah bud takes the same flag)
#
# The base is named in full so that builders with no short-name aliases (buildah --pull=never with a
# locally made base image, see test/image/build-base.sh) find the same image docker would.
ARG NODE_IMAGE=docker.io/library/node:24-trixie-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
ENV npm_config_update_notifier=false \
    npm_config_fund=false \
    npm_config_audit=false
COPY package.json package-lock.json ./
# --ignore-scripts: the devDependency `node` would download a second Node 24 in its preinstall script,
# and no other dependency needs an install script. The cache mount only speeds up rebuilds on one builder.
RUN --mount=type=secret,id=extra_ca \
    --mount=type=cache,id=kube-iptables-tailer-npm,target=/root/.npm \
    if [ -s /run/secrets/extra_ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/extra_ca; fi; \
    npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY agent ./agent
# Type declarations and source maps are half of the production node_modules and never read at run time;
# prune leaves the emptied scope directories of dev dependencies behind.
RUN npm run build \
 && npm prune --omit=dev --ignore-scripts \
 && find node_modules -type f \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' \) -delete \
 && find node_modules -type d -empty -delete

FROM ${NODE_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=""
ARG CREATED=""
LABEL org.opencontainers.image.title="kube-iptables-tailer" \
      org.opencontainers.image.description="Turns kernel packet-drop log lines (systemd journal or file) into Kubernetes PacketDrop events on the pods involved" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/node:24-trixie-slim"
# journalctl reads the node's journal; Debian ships it only in the systemd package. Trixie's systemd 257
# reads the journals of every current distribution (Debian 12's 252 is older than Ubuntu 24.04's and
# Fedora's journald). dpkg's database is kept so image scanners list the Debian packages. The node's
# machine ID is mounted at run time, so none is kept from the install. npm, npx, corepack, yarn and Node's
# headers are not needed to run the agent and are removed so the running image has no package manager
# for Node.
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends systemd \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/log/apt /var/log/dpkg.log /var/cache/debconf/*-old /etc/machine-id \
 && rm -rf /usr/local/lib/node_modules /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack \
           /usr/local/bin/yarn /usr/local/bin/yarnpkg /opt/yarn-* /root/.npm \
           /usr/local/include/node /usr/local/share/doc/node /usr/local/share/man \
 && journalctl --version
ENV NODE_ENV=production
WORKDIR /app
# package.json and package-lock.json beside node_modules: what SBOM scanners read to list npm packages.
COPY --from=build /src/package.json /src/package-lock.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
# Not root by default: parse, replay and doctor on files need no privilege. The DaemonSet chooses its user
# (manifests/base/daemonset.yaml): reading the node's journal takes root or the journal's group, whose ID
# differs between distributions (README, Security). 1000 is the base image's `node` user.
USER 1000:1000
ENTRYPOINT ["node", "/app/dist/cli.js"]
CMD ["run"]
