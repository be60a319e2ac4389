#!/usr/bin/env bash
# Load test of the rampart edge against Debian's nginx, on this machine only (127.0.0.1).
#
#   origin:   nginx, one worker, `return 200` (a static response)
#   baseline: nginx proxy_pass in front of it (keepalive upstream)
#   edge:     rampart edge with the bot module scoring (the example plan), and with the kill
#             switch off (unscored), same process, switched through the admin API
#   bare:     the least hyper proxy (crates/edge/examples/bare_proxy.rs: the edge's threading,
#             nothing else), the ceiling of what hyper gives on this machine
#
# Rounds are interleaved (nginx, edge on, edge off, bare, repeated) so drift hits all alike;
# the ratios are computed per round (each against the nginx run of its own round) and the
# median over rounds is reported, which a noisy shared machine moves least.
# Then a hot-swap run: while wrk runs, 1,000 files (valid versions alternating with invalid
# ones) are renamed into the watch dir; non-2xx, socket errors and p99 are compared with a
# run without swaps just before it.
#
# Origin, proxy and wrk share the machine's cores: absolute numbers are for this machine,
# the ratios are the result.
#
# Usage: scripts/bench-edge.sh [ROUNDS] [SECONDS]      (defaults: 3 rounds of 10 s)
# Env:   WRK_THREADS (2), WRK_CONNECTIONS (64), SWAP_FILES (1000), EDGE_WORKERS (one per
#        core), CARGO_TARGET_DIR
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${1:-3}"
SECS="${2:-10}"
THREADS="${WRK_THREADS:-2}"
CONNS="${WRK_CONNECTIONS:-64}"
SWAP_FILES="${SWAP_FILES:-1000}"
# Hard bounds, whatever the arguments say.
[ "$ROUNDS" -ge 1 ] && [ "$ROUNDS" -le 10 ] || { echo "ROUNDS must be 1..10" >&2; exit 2; }
[ "$SECS" -ge 1 ] && [ "$SECS" -le 60 ] || { echo "SECONDS must be 1..60" >&2; exit 2; }
[ "$SWAP_FILES" -ge 2 ] && [ "$SWAP_FILES" -le 10000 ] || { echo "SWAP_FILES must be 2..10000" >&2; exit 2; }

for tool in nginx wrk curl python3; do
  command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install nginx wrk curl)" >&2; exit 2; }
done
NGINX="$(command -v nginx)"

TARGET="${CARGO_TARGET_DIR:-target}"
echo "== building (release)"
cargo build --release -q -p rampart-cli
cargo build --release -q -p rampart-edge --example bench_files --example bare_proxy
RAMPART="$TARGET/release/rampart"
BENCH_FILES="$TARGET/release/examples/bench_files"
BARE="$TARGET/release/examples/bare_proxy"
WORKERS="${EDGE_WORKERS:-$(nproc)}"

WORK="$(mktemp -d /tmp/rampart-bench-edge.XXXXXX)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  for f in "$WORK"/origin/nginx.pid "$WORK"/proxy/nginx.pid; do
    [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

# Free loopback ports, chosen by the kernel.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
P_ORIGIN="$(free_port)"; P_NGINX="$(free_port)"; P_EDGE="$(free_port)"; P_ADMIN="$(free_port)"
P_BARE="$(free_port)"

# Waits (bounded) until a URL answers 200.
wait_up() {
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "$1 never came up" >&2; exit 1
}

nginx_conf() { # dir, body of the server block
  mkdir -p "$1"
  cat > "$1/nginx.conf" <<EOF
worker_processes $3;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $1/body; proxy_temp_path $1/proxy;
  fastcgi_temp_path $1/fcgi; uwsgi_temp_path $1/uwsgi; scgi_temp_path $1/scgi;
  keepalive_requests 1000000;
  $2
}
EOF
}

echo "== fixtures and servers in $WORK"
"$BENCH_FILES" "$WORK/files" "$SWAP_FILES" >/dev/null

nginx_conf "$WORK/origin" "server { listen 127.0.0.1:$P_ORIGIN; location / { return 200 \"ok\\n\"; } }" 1
nginx_conf "$WORK/proxy" "upstream origin { server 127.0.0.1:$P_ORIGIN; keepalive 128; }
  server { listen 127.0.0.1:$P_NGINX; location / {
    proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection \"\";
    proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for; } }" auto
"$NGINX" -e "$WORK/origin/error.log" -c "$WORK/origin/nginx.conf" -p "$WORK/origin"
"$NGINX" -e "$WORK/proxy/error.log" -c "$WORK/proxy/nginx.conf" -p "$WORK/proxy"
wait_up "http://127.0.0.1:$P_ORIGIN/"
wait_up "http://127.0.0.1:$P_NGINX/"

mkdir -p "$WORK/data" "$WORK/watch"
RUST_LOG="${RUST_LOG:-warn}" "$RAMPART" edge --listen "127.0.0.1:$P_EDGE" \
  --upstream "http://127.0.0.1:$P_ORIGIN" --admin "127.0.0.1:$P_ADMIN" \
  --data-dir "$WORK/data" --watch-dir "$WORK/watch" --pubkey "$WORK/files/key.pub" \
  --workers "$WORKERS" 2> "$WORK/edge.log" &
EDGE_PID=$!
PIDS+=("$EDGE_PID")
"$BARE" "127.0.0.1:$P_BARE" "127.0.0.1:$P_ORIGIN" "$WORKERS" 2> "$WORK/bare.log" &
BARE_PID=$!
PIDS+=("$BARE_PID")
# The proxy nginx's worker processes (its master only supervises).
NGINX_WORKERS="$(pgrep -P "$(cat "$WORK/proxy/nginx.pid")" | tr '\n' ' ')"
wait_up "http://127.0.0.1:$P_BARE/"
wait_up "http://127.0.0.1:$P_ADMIN/healthz"
cp "$WORK/files/v1.json" "$WORK/watch/.v1.tmp" && mv "$WORK/watch/.v1.tmp" "$WORK/watch/v1.json"
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$P_ADMIN/status" | grep -q '"scoring": true' && break
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$P_ADMIN/status" | grep -q '"scoring": true' \
  || { echo "edge never started scoring"; cat "$WORK/edge.log"; exit 1; }

killswitch() {
  curl -fsS -o /dev/null -X POST "http://127.0.0.1:$P_ADMIN/killswitch/bot" \
    -H 'content-type: application/json' -H "authorization: Bearer $(cat "$WORK/data/admin.token")" -d "{\"enabled\": $1, \"reason\": \"bench\"}"
}

# A browser-like request, so the extractors have something to chew on.
UA='Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36'
# CPU time (user + system, clock ticks) used so far by the given processes.
cpu_ticks() {
  local t=0 p
  for p in "$@"; do
    t=$(( t + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0) ))
  done
  echo "$t"
}
TICK_US=$(( 1000000 / $(getconf CLK_TCK) ))

# Prints "req_per_sec p99_ms non2xx socket_errors cpu_us_per_request" for one wrk run
# against URL; the CPU is that of the PIDs after the URL (the proxy under test), which is
# steadier than req/s on a shared machine.
run_wrk() {
  local out url="$1" before after
  shift
  before="$(cpu_ticks "$@")"
  out="$(wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" --timeout 5s --latency \
    -H "User-Agent: $UA" -H 'Accept: text/html,application/xhtml+xml' \
    -H 'Accept-Language: en-US,en;q=0.9' -H 'Accept-Encoding: gzip, br' "$url")"
  after="$(cpu_ticks "$@")"
  echo "$out" >> "$WORK/wrk.log"
  echo "$out" | awk -v cpu_us=$(( (after - before) * TICK_US )) '
    /Requests\/sec:/ { rps = $2 }
    /requests in/ { n = $1 }
    $1 == "99%" { v = $2; unit = v; gsub(/[0-9.]/, "", unit); gsub(/[a-z]/, "", v);
                  p99 = (unit == "us") ? v / 1000 : (unit == "s") ? v * 1000 : v }
    /Non-2xx or 3xx responses:/ { non2xx = $5 }
    /Socket errors:/ { gsub(/,/, ""); sock = $4 + $6 + $8 + $10 }
    END { printf "%s %.3f %d %d %.2f\n", rps, p99, non2xx, sock, (n > 0 ? cpu_us / n : 0) }'
}

declare -A RPS P99 BAD CPU
record() { # name, "rps p99 non2xx sock cpu"
  read -r rps p99 non2xx sock cpu <<< "$2"
  RPS[$1]+="$rps "; P99[$1]+="$p99 "; CPU[$1]+="$cpu "; BAD[$1]=$(( ${BAD[$1]:-0} + non2xx + sock ))
  printf '  %-14s %10.0f req/s   p99 %7.3f ms   cpu %6.2f us/req   non-2xx %d   socket errors %d\n' "$1" "$rps" "$p99" "$cpu" "$non2xx" "$sock"
}

echo "== $ROUNDS interleaved rounds of ${SECS}s, wrk -t$THREADS -c$CONNS, edge and bare with $WORKERS workers"
for r in $(seq 1 "$ROUNDS"); do
  echo " round $r"
  record nginx "$(run_wrk "http://127.0.0.1:$P_NGINX/" $NGINX_WORKERS)"
  killswitch true
  record edge-scoring "$(run_wrk "http://127.0.0.1:$P_EDGE/" "$EDGE_PID")"
  killswitch false
  record edge-unscored "$(run_wrk "http://127.0.0.1:$P_EDGE/" "$EDGE_PID")"
  record bare "$(run_wrk "http://127.0.0.1:$P_BARE/" "$BARE_PID")"
done
killswitch true

echo "== hot swap: $SWAP_FILES files renamed into the watch dir while wrk runs ${SECS}s"
# The run without swaps it is compared with comes right before it, so both see the same
# machine (other processes on a shared machine move p99 more than anything measured here).
record no-swap "$(run_wrk "http://127.0.0.1:$P_EDGE/" "$EDGE_PID")"
applied_before="$(curl -fsS "http://127.0.0.1:$P_ADMIN/metrics" | awk '/^rampart_edge_applies_total/ { s += $2 } END { print s }')"
( # Spread the files over ~80% of the run; bounded by the file count.
  pause="$(python3 -c "print(max(0.0, $SECS * 0.8 / $SWAP_FILES))")"
  for f in "$WORK"/files/swap/*.json; do
    mv "$f" "$WORK/watch/"
    sleep "$pause"
  done
) &
SWAPPER=$!
PIDS+=("$SWAPPER")
record hot-swap "$(run_wrk "http://127.0.0.1:$P_EDGE/" "$EDGE_PID")"
wait "$SWAPPER" || true
# Let the watcher finish what arrived at the end (bounded).
for _ in $(seq 1 100); do
  done_now="$(curl -fsS "http://127.0.0.1:$P_ADMIN/metrics" | awk '/^rampart_edge_applies_total/ { s += $2 } END { print s }')"
  [ $(( done_now - applied_before )) -ge "$SWAP_FILES" ] && break
  sleep 0.1
done
METRICS="$(curl -fsS "http://127.0.0.1:$P_ADMIN/metrics")"
ACTIVE="$(echo "$METRICS" | awk '/^rampart_edge_active_version / { print $2 }')"
echo "$METRICS" | grep -E '^rampart_edge_(applies_total|rejections_total\{code="invalid"\}|requests_total\{class="5xx"\}|module_errors_total)' | sed 's/^/  /'
echo "  active version after the swaps: $ACTIVE"

# Summary: mean req/s and median p99 per configuration.
stats() { python3 - "$@" <<'EOF'
import statistics, sys
vals = [float(x) for x in sys.argv[2].split()]
print(f"{statistics.mean(vals) if sys.argv[1] == 'mean' else statistics.median(vals):.3f}")
EOF
}
echo
echo "== summary (mean req/s, median p99 over rounds)"
for k in nginx edge-scoring edge-unscored bare no-swap hot-swap; do
  printf '  %-14s %10.0f req/s   p99 %7.3f ms   cpu %6.2f us/req   failed %d\n' "$k" "$(stats mean "${RPS[$k]}")" "$(stats median "${P99[$k]}")" "$(stats median "${CPU[$k]}")" "${BAD[$k]}"
done
# Median over rounds of the ratio within each round.
paired() { python3 - "$1" "$2" <<'EOF'
import statistics, sys
a = [float(x) for x in sys.argv[1].split()]
b = [float(x) for x in sys.argv[2].split()]
r = sorted(x / y for x, y in zip(a, b))
print(f"{statistics.median(r):.3f}  (rounds {r[0]:.2f}..{r[-1]:.2f})")
EOF
}
ratio() { python3 -c "print(f'{$1 / $2:.3f}')"; }
HS_P99="$(stats median "${P99[hot-swap]}")"; NS_P99="$(stats median "${P99[no-swap]}")"
echo "  edge scoring / nginx req/s : $(paired "${RPS[edge-scoring]}" "${RPS[nginx]}")   (goal >= 0.9)"
echo "  edge scoring / nginx p99   : $(paired "${P99[edge-scoring]}" "${P99[nginx]}")   (goal <= 1.5)"
echo "  scoring on / off req/s     : $(paired "${RPS[edge-scoring]}" "${RPS[edge-unscored]}")   (goal >= 0.95)"
echo "  bare hyper / nginx req/s   : $(paired "${RPS[bare]}" "${RPS[nginx]}")   (the ceiling hyper leaves)"
echo "  edge scoring / bare req/s  : $(paired "${RPS[edge-scoring]}" "${RPS[bare]}")   (what rampart's work costs)"
echo "  CPU per request, edge scoring / nginx : $(paired "${CPU[edge-scoring]}" "${CPU[nginx]}")   (lower is better)"
echo "  CPU per request, bare / nginx         : $(paired "${CPU[bare]}" "${CPU[nginx]}")"
echo "  hot-swap / no-swap p99     : $(ratio "$HS_P99" "$NS_P99")   (goal <= 1.10)"
echo "  hot-swap failed requests   : ${BAD[hot-swap]}   (goal 0)"
