#!/usr/bin/env bash
# test-systemd.sh runs the real-systemd suite (integration/systemd) and the
# container harness's own tests (internal/nspawn): it installs the host
# packages and caches the rootfs with scripts/systemd-rootfs.sh, then runs
# go test. Extra arguments go to go test (e.g. -run TestScenarios).
#
# As root it runs everything. Not as root it still runs go test, which skips
# the suite with a loud "REAL-SYSTEMD SUITE SKIPPED" line; with CI=true the
# suite is mandatory and a non-root run fails.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ "$(id -u)" -eq 0 ]]; then
	scripts/systemd-rootfs.sh >/dev/null
elif [[ "${CI:-}" == "true" ]]; then
	echo "test-systemd: REAL-SYSTEMD SUITE FAILED: mandatory in CI but not running as root" >&2
	exit 1
fi

# The suite's tests mostly wait on systemd in their own containers, so
# more of them run at once than there are CPUs.
exec go test -count=1 -timeout 15m -parallel 4 -v ./internal/nspawn/ ./integration/systemd/... "$@"
