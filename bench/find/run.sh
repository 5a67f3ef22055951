#!/usr/bin/env bash
# Benchmark GET /v1/webapi/find of `teleport-update proxy serve` against nginx
# serving the same JSON bytes as a static file, both over HTTPS with the same
# ECDSA P-256 certificate, on loopback, in one run.
#
# Reports: requests/s of each and their ratio (goal >= 0.5), the proxy's p99
# latency at roughly 80% of its peak (wrk has no rate control, so a sweep over
# connection counts picks the run closest to 80% of the best proxy run), the
# proxy's peak RSS (VmHWM, goal < 64 MiB), and the non-2xx count while the
# policy file is rewritten during a load run (goal 0).
#
# Both servers log no successful request (nginx access_log off; the proxy logs
# successful finds at debug level only) and may use both cores.
#
# Needs: go, wrk, nginx, openssl, curl (apt-get install -y wrk nginx).
# Usage: bench/find/run.sh [duration-seconds]   (default 10 per wrk run)
set -euo pipefail

DURATION="${1:-10}"
THREADS=2
PEAK_CONNS=64
ROUNDS=3

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
work="$(mktemp -d)"
proxy_pid=""
nginx_pid=""

cleanup() {
	if [[ -n "$proxy_pid" ]]; then kill "$proxy_pid" 2>/dev/null || true; fi
	if [[ -n "$nginx_pid" ]]; then kill "$nginx_pid" 2>/dev/null || true; fi
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

# As root, install the load generator and the static-file baseline when
# missing (a fresh machine has no package lists yet, hence the update).
if [ "$(id -u)" -eq 0 ] && ! { command -v wrk && command -v nginx; } >/dev/null; then
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx >/dev/null
fi
for tool in go wrk nginx openssl curl; do
	command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y wrk nginx)" >&2; exit 1; }
done

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

echo "# building teleport-update" >&2
(cd "$repo" && go build -o "$work/teleport-update" ./cmd/teleport-update)

echo "# TLS: one ECDSA P-256 certificate for both servers" >&2
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
	-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
	-keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null

policy="$work/policy.yaml"
cp "$repo/resources/autoupdate_version.yaml" "$policy"

echo "# starting the proxy" >&2
"$work/teleport-update" proxy serve --resource "$policy" --listen 127.0.0.1:0 \
	--addr-file "$work/proxy.addr" \
	--tls-cert "$work/cert.pem" --tls-key "$work/key.pem" 2>"$work/proxy.log" &
proxy_pid=$!
proxy_addr=""
for _ in $(seq 100); do
	[[ -s "$work/proxy.addr" ]] && proxy_addr="$(cat "$work/proxy.addr")"
	[[ -n "$proxy_addr" ]] && break
	sleep 0.1
done
[[ -n "$proxy_addr" ]] || { cat "$work/proxy.log" >&2; exit 1; }
proxy_url="https://$proxy_addr/v1/webapi/find?group=staging"

echo "# nginx serves the proxy's answer as a static file" >&2
mkdir -p "$work/www/v1/webapi" "$work/nginx"
curl -fsS --cacert "$work/cert.pem" "$proxy_url" >"$work/www/v1/webapi/find"
# nginx workers run as nobody: the document root must be readable.
chmod 755 "$work" "$work/www" "$work/www/v1" "$work/www/v1/webapi"
chmod 644 "$work/www/v1/webapi/find"
nginx_port="$(free_port)"
cat >"$work/nginx/nginx.conf" <<EOF
worker_processes 2;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $work/nginx/body;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$nginx_port ssl;
        ssl_certificate $work/cert.pem;
        ssl_certificate_key $work/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        root $work/www;
        location = /v1/webapi/find { default_type application/json; add_header Cache-Control no-store; }
    }
}
EOF
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' &
nginx_pid=$!
nginx_url="https://127.0.0.1:$nginx_port/v1/webapi/find?group=staging"
for _ in $(seq 50); do
	curl -fsS --cacert "$work/cert.pem" "$nginx_url" >/dev/null 2>&1 && break
	sleep 0.1
done
cmp <(curl -fsS --cacert "$work/cert.pem" "$nginx_url") <(curl -fsS --cacert "$work/cert.pem" "$proxy_url") ||
	{ echo "nginx and the proxy serve different bytes" >&2; exit 1; }

# rps OUTPUT: requests/s from wrk's output.
rps() { awk '/^Requests\/sec:/ { print $2 }' <<<"$1"; }
# p99 OUTPUT: the 99% latency from wrk --latency output.
p99() { awk '$1 == "99%" { print $2 }' <<<"$1"; }
# non2xx OUTPUT: the count of non-2xx/3xx responses (0 when wrk prints none).
non2xx() { awk '/Non-2xx or 3xx responses:/ { n = $NF } END { print n + 0 }' <<<"$1"; }
# errors OUTPUT: socket errors (connect, read, write, timeout) summed.
sockerrs() { awk '/Socket errors:/ { gsub(",", ""); n = $4 + $6 + $8 + $10 } END { print n + 0 }' <<<"$1"; }

# run_wrk CONNS URL: one wrk run (threads capped at the connection count).
run_wrk() {
	local t="$THREADS"
	if (($1 < t)); then t="$1"; fi
	wrk -t"$t" -c"$1" -d"${DURATION}s" --latency "$2"
}

echo "# peak: wrk -t$THREADS -c$PEAK_CONNS -d${DURATION}s, alternating nginx and proxy, $ROUNDS rounds" >&2
nginx_runs=()
proxy_runs=()
for round in $(seq "$ROUNDS"); do
	out="$(run_wrk "$PEAK_CONNS" "$nginx_url")"
	nginx_runs+=("$(rps "$out")")
	echo "round $round nginx: $(rps "$out") req/s, p99 $(p99 "$out")" >&2
	out="$(run_wrk "$PEAK_CONNS" "$proxy_url")"
	proxy_runs+=("$(rps "$out")")
	echo "round $round proxy: $(rps "$out") req/s, p99 $(p99 "$out"), non-2xx $(non2xx "$out")" >&2
done
# best LIST / median LIST of numbers.
best() { printf '%s\n' "$@" | sort -g | tail -1; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
best_nginx="$(best "${nginx_runs[@]}")"
best_proxy="$(best "${proxy_runs[@]}")"
median_nginx="$(median "${nginx_runs[@]}")"
median_proxy="$(median "${proxy_runs[@]}")"

echo "# p99 near 80% of the proxy's peak: sweep connection counts" >&2
declare -A sweep_rps sweep_p99
peak="$best_proxy"
for c in 1 2 4 8 16 32; do
	out="$(run_wrk "$c" "$proxy_url")"
	sweep_rps[$c]="$(rps "$out")"
	sweep_p99[$c]="$(p99 "$out")"
	echo "proxy -c$c: ${sweep_rps[$c]} req/s, p99 ${sweep_p99[$c]}" >&2
	peak="$(awk -v a="$peak" -v b="${sweep_rps[$c]}" 'BEGIN { print (b > a) ? b : a }')"
done
target="$(awk -v p="$peak" 'BEGIN { print p * 0.8 }')"
best_diff=""
for c in 1 2 4 8 16 32; do
	d="$(awk -v r="${sweep_rps[$c]}" -v t="$target" 'BEGIN { d = r - t; if (d < 0) d = -d; print d }')"
	if [[ -z "$best_diff" ]] || awk -v d="$d" -v b="$best_diff" 'BEGIN { exit !(d < b) }'; then
		best_diff="$d"
		conns_at80="$c"
	fi
done
p99_at80="${sweep_p99[$conns_at80]}"
rps_at80="${sweep_rps[$conns_at80]}"

echo "# hot reload under load: rewrite the policy every 0.5 s during a run" >&2
reloads_before="$(curl -fsS --cacert "$work/cert.pem" "https://$proxy_addr/metrics" | awk '/^teleport_update_policy_reloads_total/ { print $2 }')"
(
	for i in $(seq 1 $((DURATION * 2 - 2))); do
		sleep 0.5
		sed "s/target_version: .*/target_version: 16.4.$((i + 10))/" "$repo/resources/autoupdate_version.yaml" >"$policy.tmp"
		mv "$policy.tmp" "$policy"
	done
) &
writer=$!
reload_out="$(run_wrk "$PEAK_CONNS" "$proxy_url")"
wait "$writer"
sleep 1
reloads_after="$(curl -fsS --cacert "$work/cert.pem" "https://$proxy_addr/metrics" | awk '/^teleport_update_policy_reloads_total/ { print $2 }')"
echo "proxy during reloads: $(rps "$reload_out") req/s" >&2

rss_kib="$(awk '/^VmHWM:/ { print $2 }' "/proc/$proxy_pid/status")"

echo
echo "find benchmark ($(nproc) cores, load average $(cut -d' ' -f1 /proc/loadavg), wrk -t$THREADS -c$PEAK_CONNS -d${DURATION}s, $ROUNDS alternating rounds)"
printf 'nginx static file:      %10.0f req/s best, %.0f median\n' "$best_nginx" "$median_nginx"
printf 'proxy find:             %10.0f req/s best, %.0f median\n' "$best_proxy" "$median_proxy"
printf 'ratio proxy/nginx:      %10.2f best/best, %.2f median/median (goal >= 0.5)\n' \
	"$(awk -v p="$best_proxy" -v n="$best_nginx" 'BEGIN { print p / n }')" \
	"$(awk -v p="$median_proxy" -v n="$median_nginx" 'BEGIN { print p / n }')"
printf 'proxy p99 at -c%-2s:      %10s (%.0f req/s, %.0f%% of the best proxy run %.0f; goal < 5ms)\n' "$conns_at80" "$p99_at80" "$rps_at80" "$(awk -v r="$rps_at80" -v p="$peak" 'BEGIN { print 100 * r / p }')" "$peak"
printf 'proxy peak RSS:         %10.1f MiB (goal < 64)\n' "$(awk -v k="$rss_kib" 'BEGIN { print k / 1024 }')"
printf 'reloads during run:     %10d\n' "$((${reloads_after%.*} - ${reloads_before%.*}))"
printf 'non-2xx during reloads: %10d (goal 0)\n' "$(non2xx "$reload_out")"
printf 'socket errors:          %10d\n' "$(sockerrs "$reload_out")"
