#!/usr/bin/env bash
# systemd-rootfs.sh builds (once) and caches a minimal Debian bookworm root
# filesystem with systemd, for the real-systemd test suite (integration/systemd)
# booted with systemd-nspawn. See SYSTEMD-TESTING.md.
#
# Usage: scripts/systemd-rootfs.sh        (as root; no stdin needed)
#
# Result: $TELEPORT_UPDATE_CACHE/rootfs-bookworm.tar.zst (default cache dir
# /var/cache/teleport-update). The tarball is reused while its stamp file
# matches ROOTFS_STAMP below; change the stamp to force a rebuild everywhere.
# Environment:
#   TELEPORT_UPDATE_CACHE  cache directory (default /var/cache/teleport-update)
#   ROOTFS_MIRROR          Debian mirror (default: taken from the apt sources)
#   ROOTFS_FORCE=1         rebuild even when the cached tarball is current
set -euo pipefail

# Bump when the package list or the slimming below changes.
readonly ROOTFS_STAMP="bookworm-minbase-v1 systemd,systemd-sysv,dbus,ca-certificates"
readonly SUITE="bookworm"
readonly INCLUDE="systemd,systemd-sysv,dbus,ca-certificates"
readonly CACHE_DIR="${TELEPORT_UPDATE_CACHE:-/var/cache/teleport-update}"
readonly TARBALL="${CACHE_DIR}/rootfs-${SUITE}.tar.zst"
readonly STAMP_FILE="${TARBALL}.stamp"
readonly APT_LOCK_TIMEOUT=300 # seconds to wait for another apt/dpkg run

log() { printf 'systemd-rootfs: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ "$(id -u)" -eq 0 ]] || die "must run as root (debootstrap and systemd-nspawn need it)"

export DEBIAN_FRONTEND=noninteractive

# install_tools installs the host packages the harness needs, only when missing.
install_tools() {
	local missing=()
	command -v systemd-nspawn >/dev/null 2>&1 || missing+=(systemd-container)
	command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
	command -v zstd >/dev/null 2>&1 || missing+=(zstd)
	command -v nsenter >/dev/null 2>&1 || missing+=(util-linux)
	if ((${#missing[@]} == 0)); then
		return 0
	fi
	log "installing host packages: ${missing[*]}"
	apt-get -o DPkg::Lock::Timeout="${APT_LOCK_TIMEOUT}" update -q </dev/null
	apt-get -o DPkg::Lock::Timeout="${APT_LOCK_TIMEOUT}" install -y -q --no-install-recommends \
		"${missing[@]}" </dev/null
}

# mirror prints the Debian mirror URI from the machine's apt sources.
mirror() {
	if [[ -n "${ROOTFS_MIRROR:-}" ]]; then
		printf '%s\n' "${ROOTFS_MIRROR}"
		return 0
	fi
	local uri=""
	if [[ -r /etc/apt/sources.list.d/debian.sources ]]; then
		# First deb822 stanza whose URIs line is not the security archive.
		uri="$(awk '/^URIs:/ && $2 !~ /security/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources)"
	fi
	if [[ -z "${uri}" && -r /etc/apt/sources.list ]]; then
		uri="$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list)"
	fi
	printf '%s\n' "${uri:-http://deb.debian.org/debian}"
}

is_current() {
	[[ -s "${TARBALL}" && -r "${STAMP_FILE}" ]] && [[ "$(cat "${STAMP_FILE}")" == "${ROOTFS_STAMP}" ]]
}

build() {
	local work dir mirror_uri
	work="$(mktemp -d "${CACHE_DIR}/build.XXXXXX")"
	# shellcheck disable=SC2064 # expand now: the trap must remove this build's dir.
	trap "rm -rf -- '${work}'" EXIT
	dir="${work}/rootfs"
	mirror_uri="$(mirror)"
	log "building ${SUITE} rootfs from ${mirror_uri} (about a minute)"
	debootstrap --variant=minbase --include="${INCLUDE}" "${SUITE}" "${dir}" "${mirror_uri}" \
		</dev/null >"${work}/debootstrap.log" 2>&1 || {
		tail -n 30 "${work}/debootstrap.log" >&2
		die "debootstrap failed"
	}

	log "slimming rootfs"
	rm -f "${dir}"/var/cache/apt/archives/*.deb
	rm -rf "${dir}"/var/lib/apt/lists/*
	rm -rf "${dir}"/usr/share/doc/* "${dir}"/usr/share/man/* "${dir}"/usr/share/info/*
	find "${dir}/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf -- {} +
	rm -f "${dir}/etc/hostname"
	: >"${dir}/etc/machine-id"
	systemctl --root="${dir}" mask --quiet \
		console-getty.service getty@.service \
		apt-daily.timer apt-daily-upgrade.timer \
		systemd-timesyncd.service
	[[ -s "${dir}/etc/ssl/certs/ca-certificates.crt" ]] || die "rootfs has no CA bundle"
	[[ -x "${dir}/lib/systemd/systemd" ]] || die "rootfs has no systemd"

	log "packing ${TARBALL}"
	tar --numeric-owner --xattrs -C "${dir}" -cf - . | zstd -q -T0 -3 -o "${work}/rootfs.tar.zst"
	mv -f -- "${work}/rootfs.tar.zst" "${TARBALL}"
	printf '%s\n' "${ROOTFS_STAMP}" >"${STAMP_FILE}.tmp"
	mv -f -- "${STAMP_FILE}.tmp" "${STAMP_FILE}"
	rm -rf -- "${work}"
	trap - EXIT
}

main() {
	install_tools
	install -d -m 0755 "${CACHE_DIR}"
	# One builder at a time; a second caller waits and then finds the cache current.
	exec 9>"${CACHE_DIR}/.rootfs.lock"
	flock 9
	if [[ "${ROOTFS_FORCE:-0}" != 1 ]] && is_current; then
		log "cached rootfs is current: ${TARBALL}"
	else
		build
		log "rootfs ready: ${TARBALL} ($(du -h "${TARBALL}" | cut -f1))"
	fi
	printf '%s\n' "${TARBALL}"
}

main "$@"
