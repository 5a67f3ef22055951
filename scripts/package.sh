#!/usr/bin/env bash
# Builds the .deb and .rpm of teleport-update for amd64 and arm64
# (`make package`) and checks them: lintian on each .deb (errors and
# warnings fail; the package's own overrides explain what does not apply)
# and `rpm -qlp` on each .rpm against the list a package must hold.
#
#   bash scripts/package.sh [VERSION [OUTDIR]]
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local CGO_ENABLED=0

version="${1:-${VERSION:-0.0.0}}"
out="${2:-dist}"

go run ./scripts/package -version "$version" -out "$out"

want_rpm() {
	cat <<LIST
/etc/teleport-update/keys.d
/usr/bin/teleport-update
/usr/lib/systemd/system/teleport-update.service
/usr/lib/systemd/system/teleport-update.timer
/usr/share/doc/teleport-update/copyright
/usr/share/man/man8/teleport-update.8.gz
LIST
	for key in internal/keys/*.pem; do
		echo "/usr/share/teleport-update/keys/$(basename "$key")"
	done
}

status=0
for deb in "$out"/teleport-update_"$version"-1_*.deb; do
	echo "lintian $deb"
	# lintian warns that it runs as root; the check itself is the same.
	if ! lintian --fail-on error,warning "$deb" 2> >(grep -v 'running with root privileges' >&2); then
		echo "lintian found problems in $deb" >&2
		status=1
	fi
done
for rpm in "$out"/teleport-update-"$version"-1.*.rpm; do
	echo "rpm -qlp $rpm"
	if ! diff -u <(want_rpm | sort) <(rpm -qlp "$rpm" | sort); then
		echo "$rpm does not hold what a package must" >&2
		status=1
	fi
done
ls -l "$out"/*.deb "$out"/*.rpm
exit "$status"
