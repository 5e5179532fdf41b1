#!/usr/bin/env bash
# Runs the public HTTP cache test suite (github.com/http-tests/cache-tests, the one cache-tests.fyi
# publishes) against a reverse proxy, on this machine, and prints the result per suite, counted
# with the suite's own determineTestResult (scripts/cache_tests_summary.mjs).
#
# Usage: scripts/cache_tests.sh CHECKOUT [TEST_ID]
#   CHECKOUT  a clone of http-tests/cache-tests (`npm install` is run there when node_modules is
#             missing). CI cannot reach that repository, so this script is run by hand.
#   TEST_ID   run one test and print its requests and responses (the runner's --id) instead.
#
# It starts, on free loopback ports: the suite's origin (test-engine/server/server.mjs), the proxy
# in front of it, and (unless REDIS_URL is set) a private redis-server; then the suite's runner
# (`npm run --silent cli --base=<proxy>`). Everything it starts is stopped on exit.
#
# The proxy, by default, is this repository's examples/reverse_proxy (release build). Any other
# proxy: PROXY_CMD, a command run with bash in the foreground (it must not daemonise) with
# UPSTREAM (http://127.0.0.1:<origin port>), UPSTREAM_PORT, LISTEN (127.0.0.1:<proxy port>),
# LISTEN_PORT and WORK_DIR (a scratch directory) in its environment. For nginx:
#   PROXY_CMD=scripts/cache_tests_nginx.sh scripts/cache_tests.sh ../cache-tests
#
# PROXY_ARGS adds arguments to the default proxy's command line (e.g. "--ttl 5").
# Environment: RESULTS (where the runner's raw JSON is kept; default
# target/cache-tests/<proxy>.json), REDIS_URL (use this Redis instead of a private one),
# SHOW_FAILURES=0 (only the tables, not the list of failing tests).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  sed -n '6,10p' "$0" >&2
  exit 2
fi
checkout=$(cd "$1" && pwd)
test_id=${2:-}
[ -f "$checkout/test-engine/server/server.mjs" ] || {
  echo "$checkout is not a checkout of http-tests/cache-tests" >&2
  exit 2
}
command -v node >/dev/null || { echo "node (>= 18) is needed to run the suite" >&2; exit 2; }
[ -d "$checkout/node_modules" ] || (cd "$checkout" && npm install --no-audit --no-fund)

. scripts/lib/harness.sh
work=$(mktemp -d)
pids=()
# Each process is started with setsid, in a process group of its own, so that stopping it stops
# its children too (a proxy's workers, npm's node) and nothing else.
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits (up to 30 s) until something accepts connections on loopback port $1; $2 names it.
wait_for_port() {
  for _ in $(seq 600); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "$2 did not start listening on port $1; its log:" >&2
  cat "$work/$2.log" >&2 || true
  return 1
}

# A private Redis for any proxy command (a PROXY_CMD running our reverse_proxy, say a debug
# build, would otherwise fall back to the shared one on 6379).
if [ -z "${REDIS_URL:-}" ]; then
  redis_port=$(free_port)
  setsid redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
    --loglevel warning >"$work/redis.log" 2>&1 &
  pids+=($!)
  wait_for_port "$redis_port" redis
  export REDIS_URL="redis://127.0.0.1:$redis_port/0"
fi
if [ -z "${PROXY_CMD:-}" ]; then
  cargo build --release --quiet -p warp-redis-cache --example reverse_proxy
  proxy_name=reverse_proxy
  PROXY_CMD="exec '$repo/target/release/examples/reverse_proxy' --upstream \"\$UPSTREAM\" --listen \"\$LISTEN\" ${PROXY_ARGS:-}"
  [ -z "${PROXY_ARGS:-}" ] || proxy_name="$proxy_name$(echo " $PROXY_ARGS" | tr -s ' =-' '_')"
else
  proxy_name=$(basename "${PROXY_CMD%% *}" .sh)
fi

origin_port=$(free_port)
(
  cd "$checkout"
  export npm_config_protocol=http npm_config_port="$origin_port"
  export npm_config_pidfile="$work/origin.pid"
  exec setsid node test-engine/server/server.mjs
) >"$work/origin.log" 2>&1 &
pids+=($!)
wait_for_port "$origin_port" origin

proxy_port=$(free_port)
mkdir -p "$work/proxy"
UPSTREAM="http://127.0.0.1:$origin_port" UPSTREAM_PORT="$origin_port" \
  LISTEN="127.0.0.1:$proxy_port" LISTEN_PORT="$proxy_port" WORK_DIR="$work/proxy" \
  setsid bash -c "$PROXY_CMD" >"$work/proxy.log" 2>&1 &
pids+=($!)
wait_for_port "$proxy_port" proxy

base="http://127.0.0.1:$proxy_port"
if [ -n "$test_id" ]; then
  (cd "$checkout" && npm run --silent cli --base="$base" --id="$test_id")
  echo "--- proxy log" && tail -n 50 "$work/proxy.log"
  exit 0
fi

results=${RESULTS:-$repo/target/cache-tests/$proxy_name.json}
mkdir -p "$(dirname "$results")"
echo "running the suite against $proxy_name on $base (origin on port $origin_port)..." >&2
started=$(date +%s)
(cd "$checkout" && npm run --silent cli --base="$base") >"$results"
echo "done in $(($(date +%s) - started)) s; raw results in $results" >&2
node scripts/cache_tests_summary.mjs "$checkout" "$results" "$proxy_name"
