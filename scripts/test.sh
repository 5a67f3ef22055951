#!/usr/bin/env bash
# The project's test command (`make test`). With no argument it runs every
# stage; with one (lint|unit|package|systemd|fuzz) just that stage.
#
# The real-systemd stage is mandatory when CI=true; elsewhere, when not root,
# it says loudly that it skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
# The smoke run of make test gives each fuzz target 5 s (with 25 targets
# that keeps the whole of CI under 15 minutes); make fuzz gives 10 s.
FUZZTIME="${FUZZTIME:-5s}"

log() { printf '\n=== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }

apt_install() {
	local missing=()
	local pkg
	for pkg in "$@"; do
		dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
	done
	[ "${#missing[@]}" -eq 0 ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		echo "missing packages ${missing[*]} and not root; install them with apt-get" >&2
		return 1
	fi
	log "apt-get install ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

stage_lint() {
	log "gofmt"
	local unformatted
	unformatted="$(gofmt -l .)"
	if [ -n "$unformatted" ]; then
		echo "gofmt needed on:" >&2
		echo "$unformatted" >&2
		return 1
	fi
	log "go vet"
	go vet ./...
	log "shellcheck"
	apt_install shellcheck
	local scripts
	mapfile -t scripts < <(find . -path ./.git -prune -o -type f \( -name '*.sh' -o -path './.ci/run' \) -print | sort)
	shellcheck -x "${scripts[@]}"
	echo "shellcheck clean: ${#scripts[@]} scripts"
}

stage_unit() {
	log "go test ./..."
	apt_install openssl curl rpm
	# PostgreSQL, the census store's second backend: internal/pgtest runs a
	# throwaway cluster of Debian's binaries. Without them its tests skip
	# loudly, or fail under CI=true.
	if [ "$(id -u)" -eq 0 ] || [ "${CI:-}" = "true" ]; then
		apt_install postgresql
	fi
	# The real-systemd suite has its own stage.
	local pkgs
	mapfile -t pkgs < <(go list ./... | grep -v /integration/systemd)
	# The race detector needs cgo; the shipped binaries do not.
	CGO_ENABLED=1 go test -race -count=1 "${pkgs[@]}"
}

stage_package() {
	log "packages (.deb, .rpm) and their checks"
	if ! apt_install lintian rpm; then
		[ "${CI:-}" = "true" ] && return 1
		echo "## PACKAGE CHECKS SKIPPED: lintian or rpm missing and not root ##"
		return 0
	fi
	local out
	out="$(mktemp -d)"
	bash scripts/package.sh 0.0.0 "$out"
	rm -rf "$out"
}

stage_systemd() {
	log "real-systemd suite"
	if [ "$(id -u)" -ne 0 ]; then
		if [ "${CI:-}" = "true" ]; then
			echo "REAL-SYSTEMD SUITE: CI=true requires root" >&2
			return 1
		fi
		echo "##################################################################"
		echo "## REAL-SYSTEMD SUITE SKIPPED: not root (run make test as root) ##"
		echo "##################################################################"
		return 0
	fi
	bash scripts/test-systemd.sh
}

# fuzz_seconds turns FUZZTIME (Go duration: 10s, 2m, 1h) into seconds.
fuzz_seconds() {
	local t="$1"
	case "$t" in
	*h) echo $((${t%h} * 3600)) ;;
	*m) echo $((${t%m} * 60)) ;;
	*s) echo "${t%s}" ;;
	*)
		echo "FUZZTIME must be a Go duration in s, m or h, not $t" >&2
		return 1
		;;
	esac
}

stage_fuzz() {
	log "fuzz targets, ${FUZZTIME} each"
	local pkg target budget rc
	# Minimizing a newly interesting input runs the target thousands of times
	# without counting them (the "0 execs/s" stall). A time limit there makes
	# Go's coordinator report the minimizer's own deadline as a failure, so the
	# smoke run bounds it by count. A crasher is still saved either way.
	local minimize=500x
	# A target that stops making progress must fail loudly, naming itself,
	# not wait for go test's ten-minute timeout.
	budget=$(($(fuzz_seconds "$FUZZTIME") + 120))
	while read -r pkg; do
		for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
			echo "--- $pkg $target"
			rc=0
			timeout --signal=QUIT --kill-after=10 "$budget" \
				go test -run='^$' -fuzz="^${target}\$" -fuzztime="$FUZZTIME" \
				-fuzzminimizetime="$minimize" "$pkg" || rc=$?
			if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
				echo "FUZZ STALL: $pkg $target made no progress within ${budget} s" >&2
				return 1
			fi
			[ "$rc" -eq 0 ] || return "$rc"
		done
	done < <(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u | sed 's|^\./|github.com/gravitational/teleport-update/|')
}

case "${1:-all}" in
lint) stage_lint ;;
unit) stage_unit ;;
systemd) stage_systemd ;;
package) stage_package ;;
fuzz) stage_fuzz ;;
all)
	start=$(date +%s)
	stage_lint
	stage_unit
	stage_package
	stage_systemd
	stage_fuzz
	log "all stages passed in $(($(date +%s) - start)) s"
	;;
*)
	echo "usage: $0 [lint|unit|package|systemd|fuzz]" >&2
	exit 2
	;;
esac
