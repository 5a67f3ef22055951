#!/usr/bin/env bash
# Runs every benchmark of the project; each measures its baseline in the
# same run and prints ratios. The combined output goes to stdout and to
# bench/RESULTS.md. Benchmarks that need Debian packages (wrk, nginx)
# install them when run as root.
#
#   make bench                # all
#   bash bench/run.sh fetch   # one: fetch extract find census census-shared noop fleet
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local CGO_ENABLED=0

out=bench/RESULTS.md
all=(fetch extract find census census-shared noop fleet)
selected=("$@")
[ "${#selected[@]}" -eq 0 ] && selected=("${all[@]}")

run_one() {
	case "$1" in
	fetch) go run ./bench/fetch ;;
	extract) go run ./bench/extract ;;
	find) bash bench/find/run.sh ;;
	census) go run ./bench/census ;;
	census-shared) go run ./bench/census -shared ;;
	noop) go run ./bench/noop ;;
	fleet) go run ./bench/fleet ;;
	*)
		echo "unknown benchmark $1 (have: ${all[*]})" >&2
		return 2
		;;
	esac
}

{
	echo "# Benchmark results"
	echo
	echo "Made by \`make bench\` on $(date -u +%Y-%m-%d) — $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(go version | awk '{print $3}'), load average at start: $(cut -d' ' -f1-3 /proc/loadavg)."
	echo "Every ratio is against a baseline measured in the same run on the same machine."
} >"$out.tmp"

status=0
for b in "${selected[@]}"; do
	echo "=== bench $b" >&2
	{
		echo
		echo "## $b"
		echo
		echo '```'
	} >>"$out.tmp"
	if ! run_one "$b" 2>&1 | tee -a "$out.tmp"; then
		echo "(benchmark $b failed)" | tee -a "$out.tmp"
		status=1
	fi
	echo '```' >>"$out.tmp"
done
mv "$out.tmp" "$out"
echo "Results written to $out" >&2
exit "$status"
