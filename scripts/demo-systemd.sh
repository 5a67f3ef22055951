#!/usr/bin/env bash
# demo-systemd.sh (`make demo-systemd`) shows teleport-update against a real
# systemd: it boots throwaway systemd-nspawn containers (root only; the rootfs
# is built and cached by scripts/systemd-rootfs.sh on the first run) and runs
# the real-systemd scenarios with their narration:
#   install v1 -> update to v2 (v1 kept as backup) -> a v3 that exits at start
#   is rolled back to v2 and skipped -> a v4 that crashes after 5 s likewise ->
#   the timer's own run performs an update -> a TCP session held open to the
#   agent survives an update (a reload: the v1 process keeps serving it while
#   a v2 process takes new connections) and a rolled-back one.
# Each step is printed in plain words, then the final `teleport-update status`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ "$(id -u)" -ne 0 ]]; then
	echo "demo-systemd: needs root to boot systemd containers (try: sudo make demo-systemd)" >&2
	exit 1
fi
scripts/systemd-rootfs.sh >/dev/null
export CGO_ENABLED="${CGO_ENABLED:-0}"
exec go test -count=1 -timeout 10m -v -run '^(TestScenarios|TestTimerUpdates|TestUpdateKeepsSessions)$' ./integration/systemd/
