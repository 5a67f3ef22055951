#!/usr/bin/env bash
# Runs the benchmarks of the project; each measures its baseline in the
# same run and prints ratios. The output goes to stdout and into
# bench/RESULTS.md, one section per benchmark: a run of some benchmarks
# replaces only their sections and keeps the others. Benchmarks that need
# Debian packages (wrk, nginx) install them when run as root.
#
#   make bench                        # all
#   bash bench/run.sh fetch           # some: fetch extract install find census census-shared noop fleet rollout
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local CGO_ENABLED=0

out=bench/RESULTS.md
all=(fetch extract install find census census-shared noop fleet rollout)
selected=("$@")
[ "${#selected[@]}" -eq 0 ] && selected=("${all[@]}")
for b in "${selected[@]}"; do
	if [[ " ${all[*]} " != *" $b "* ]]; then
		echo "unknown benchmark $b (have: ${all[*]})" >&2
		exit 2
	fi
done

run_one() {
	case "$1" in
	fetch) go run ./bench/fetch ;;
	extract) go run ./bench/extract ;;
	install) go run ./bench/install ;;
	find) bash bench/find/run.sh ;;
	census) go run ./bench/census ;;
	census-shared) go run ./bench/census -shared ;;
	noop) go run ./bench/noop ;;
	fleet) go run ./bench/fleet ;;
	rollout) go run ./bench/rollout ;;
	esac
}

machine() {
	echo "$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(go version | awk '{print $3}')"
}

# old_section NAME prints the section "## NAME" of the current results
# (its heading up to the next heading), if there is one.
old_section() {
	[ -f "$out" ] || return 0
	awk -v h="## $1" '/^## / { keep = ($0 == h) } keep' "$out"
}

# old_header prints what the current results hold before their first section.
old_header() {
	awk '/^## / { exit } { print }' "$out"
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

status=0
for b in "${selected[@]}"; do
	echo "=== bench $b" >&2
	sec="$work/$b.md"
	{
		echo "## $b"
		echo
		echo "Run on $(date -u +%Y-%m-%d) — $(machine), load average at start: $(cut -d' ' -f1-3 /proc/loadavg)."
		echo
		echo '```'
	} >"$sec"
	if ! run_one "$b" 2>&1 | tee -a "$sec"; then
		echo "(benchmark $b failed)" | tee -a "$sec"
		status=1
	fi
	{
		echo '```'
		echo
	} >>"$sec"
done

{
	if [ "${#selected[@]}" -eq "${#all[@]}" ] || [ ! -f "$out" ]; then
		echo "# Benchmark results"
		echo
		echo "Made by \`make bench\` on $(date -u +%Y-%m-%d) — $(machine)."
		echo "Every ratio is against a baseline measured in the same run on the same machine."
		echo
	else
		old_header
	fi
	for b in "${all[@]}"; do
		if [ -f "$work/$b.md" ]; then
			cat "$work/$b.md"
		else
			old_section "$b"
		fi
	done
} >"$out.tmp"
# No blank line at the end of the file.
sed -e :a -e '/^\n*$/{$d;N;ba' -e '}' "$out.tmp" >"$out"
rm -f "$out.tmp"
echo "Results written to $out (sections: ${selected[*]})" >&2
exit "$status"
