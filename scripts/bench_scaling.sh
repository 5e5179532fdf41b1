#!/usr/bin/env bash
# Scaling sweeps (issue 16), side by side in one run: cached-hit throughput against body size
# (1, 20, 200 KiB), live keys in Redis (1k, 100k, 1M) and tags per entry (1, 26, 200), each as a
# ratio to the 1 KiB / 1k keys / 1 tag hit measured in the same round; and the miss path
# (lookup + origin + store) against the same route uncached. Every case also reports p99, CPU
# time per request (service + its redis-server, from /proc), the service's RSS and Redis's
# memory, to show what stays bounded.
#
# The target is crates/warp-redis-cache/examples/bench_target.rs (the library's filters with
# the service's default cache settings, an origin serving the body from memory, and the same
# body uncached). Each keyspace size gets its own redis-server and target process, so the
# sizes can be interleaved round by round; the misses get a pair of their own, and a third pair
# stores entries uncompressed (to tell gzip's share of the large-body costs). Large
# keyspaces are built in Redis, not over HTTP (1M misses at ~15k/s would take over a minute):
# one entry is stored through the service, then copied (Redis COPY, in a Lua loop, TTL kept)
# under the names the service would give the other keys. Entries carry only shared tags, so a
# copy is byte for byte what a miss on its key would have stored and is served as a hit (the
# script checks the last one). Hits are spread at random over all N keys of their keyspace.
#
# Runs on free loopback ports with private redis-servers (never 6379), stops them on exit.
# Usage: scripts/bench_scaling.sh            (SECS=5 ROUNDS=3 CONNS=64 by default, ~7 minutes)
#        SECS=2 ROUNDS=1 LIVE_KEYS="1000 100000" scripts/bench_scaling.sh     (a quick look)
#        KEEP_WORK=1 keeps the work directory (per-round results in results, wrk scripts).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${SECS:-5}
rounds=${ROUNDS:-3}
conns=${CONNS:-64}
read -r -a live_keys <<<"${LIVE_KEYS:-1000 100000 1000000}"
ref_keys=${live_keys[0]}

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }
started=$(date +%s)
nice -n 10 cargo build --release --quiet -p warp-redis-cache --example bench_target

. scripts/lib/harness.sh
work=$(mktemp -d)
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -n "${KEEP_WORK:-}" ] && echo "kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT

# One redis-server and one target per instance: "k<N>" (a keyspace of N entries) and "miss".
declare -A rport rpid tport tpid
start_instance() {
  local name=$1 threshold=${2:-1024}
  rport[$name]=$(free_port)
  start_redis "${rport[$name]}"
  rpid[$name]=$redis_pid
  pids+=("$redis_pid")
  BENCH_REDIS_URL="redis://127.0.0.1:${rport[$name]}/0" BENCH_COMPRESSION_THRESHOLD_BYTES=$threshold \
    target/release/examples/bench_target \
    >"$work/$name.log" 2>&1 &
  tpid[$name]=$!
  pids+=("$!")
  tport[$name]=$(wait_for_listening "$work/$name.log")
}

# Stores /hit/BYTES/TAGS/0 through the target, then copies it to keys 1 .. N-1.
copy_lua='local n = 0
for i = tonumber(ARGV[1]), tonumber(ARGV[2]) do
  redis.call("COPY", KEYS[1], ARGV[3] .. i)
  n = n + 1
end
return n'
fill() {
  local name=$1 bytes=$2 tags=$3 n=$4 from to
  local base="http://127.0.0.1:${tport[$name]}/hit/$bytes/$tags"
  curl -sf "$base/0" -o /dev/null
  for ((from = 1; from < n; from += 100000)); do
    to=$((from + 99999 < n - 1 ? from + 99999 : n - 1))
    redis-cli -p "${rport[$name]}" eval "$copy_lua" 1 "wrc:bench:GET:/hit/$bytes/$tags/0" \
      "$from" "$to" "wrc:bench:GET:/hit/$bytes/$tags/" >/dev/null
  done
  curl -sf -D - "$base/$((n - 1))" -o /dev/null | grep -qi '^x-cache: HIT' \
    || { echo "a copied entry ($base/$((n - 1))) was not served as a hit" >&2; exit 1; }
}

fill_start=$(date +%s.%N)
for n in "${live_keys[@]}"; do
  start_instance "k$n"
  fill "k$n" 1024 1 "$n"
done
fill_secs=$(echo "$(date +%s.%N) - $fill_start" | bc)
for bytes in 20480 204800; do fill "k$ref_keys" "$bytes" 1 "$ref_keys"; done
for tags in 26 200; do fill "k$ref_keys" 1024 "$tags" "$ref_keys"; done
start_instance miss
# Entries never compressed (threshold 1 GiB), to tell gzip's share of the large-body costs.
start_instance raw 1073741824
for bytes in 20480 204800; do fill raw "$bytes" 1 "$ref_keys"; done

# wrk scripts: hits spread at random over N keys; misses on keys never asked for before.
spread_lua() {
  local file="$work/spread-$1-$2-$3.lua"
  [ -f "$file" ] || cat >"$file" <<LUA
math.randomseed($RANDOM)
request = function()
  return wrk.format("GET", "/hit/$1/$2/" .. math.random(0, $3 - 1))
end
LUA
  echo "$file"
}
miss_lua() {
  local file="$work/miss-$1-$2-$3.lua"
  cat >"$file" <<LUA
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/miss/$1/$2/$3-" .. n)
end
LUA
  echo "$file"
}

# sweep | case | instance | kind (hit, plain, miss) | bytes | tags | extra header | the case of
# the same body uncached in the same process (the "vs bare" column)
ref="hit 1 KiB, ${ref_keys} keys, 1 tag"
cases=(
  "body|bare 1 KiB|k$ref_keys|plain|1024|1||bare 1 KiB"
  "body|bare 20 KiB|k$ref_keys|plain|20480|1||bare 20 KiB"
  "body|bare 200 KiB|k$ref_keys|plain|204800|1||bare 200 KiB"
  "ref|$ref|k$ref_keys|hit|1024|1||bare 1 KiB"
  "body|hit 20 KiB|k$ref_keys|hit|20480|1||bare 20 KiB"
  "body|hit 200 KiB|k$ref_keys|hit|204800|1||bare 200 KiB"
  "body|hit 20 KiB, gzip accepted|k$ref_keys|hit|20480|1|Accept-Encoding: gzip|bare 20 KiB"
  "body|hit 200 KiB, gzip accepted|k$ref_keys|hit|204800|1|Accept-Encoding: gzip|bare 200 KiB"
  "body|bare 20 KiB (no-gzip process)|raw|plain|20480|1||bare 20 KiB (no-gzip process)"
  "body|hit 20 KiB, stored uncompressed|raw|hit|20480|1||bare 20 KiB (no-gzip process)"
  "body|bare 200 KiB (no-gzip process)|raw|plain|204800|1||bare 200 KiB (no-gzip process)"
  "body|hit 200 KiB, stored uncompressed|raw|hit|204800|1||bare 200 KiB (no-gzip process)"
  "tags|hit 26 tags|k$ref_keys|hit|1024|26||bare 1 KiB"
  "tags|hit 200 tags|k$ref_keys|hit|1024|200||bare 1 KiB"
  "miss|uncached 1 KiB|miss|plain|1024|1||uncached 1 KiB"
  "miss|miss 1 KiB, 1 tag|miss|miss|1024|1||uncached 1 KiB"
  "miss|miss 1 KiB, 26 tags|miss|miss|1024|26||uncached 1 KiB"
  "miss|uncached 20 KiB|miss|plain|20480|1||uncached 20 KiB"
  "miss|miss 20 KiB, 1 tag|miss|miss|20480|1||uncached 20 KiB"
  "miss|uncached 20 KiB (no-gzip process)|raw|plain|20480|1||uncached 20 KiB (no-gzip process)"
  "miss|miss 20 KiB, 1 tag, stored uncompressed|raw|miss|20480|1||uncached 20 KiB (no-gzip process)"
)
for n in "${live_keys[@]:1}"; do cases+=("keys|hit $n keys|k$n|hit|1024|1||bare 1 KiB"); done

ticks() { local t=0 p; for p in "$@"; do t=$((t + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}'))); done; echo "$t"; }
to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000} printf "%.2f", v}'; }
hz=$(getconf CLK_TCK)
# Runs one case for $1 seconds; with a round number, appends a result line to $work/results.
run_case() {
  local duration=$1 round=$2 sweep=$3 name=$4 inst=$5 kind=$6 bytes=$7 tags=$8 header=$9 vs=${10}
  local base="http://127.0.0.1:${tport[$inst]}" script=() out t0 t1 r0 r1
  case $kind in
    plain) base="$base/plain/$bytes/x" ;;
    hit) script=(-s "$(spread_lua "$bytes" "$tags" "$([[ $inst == k* ]] && echo "${inst#k}" || echo "$ref_keys")")") ;;
    miss) script=(-s "$(miss_lua "$bytes" "$tags" "r$round-$RANDOM")") ;;
  esac
  t0=$(ticks "${tpid[$inst]}")
  r0=$(ticks "${rpid[$inst]}")
  out=$(wrk -t1 -c"$conns" -d"${duration}s" --latency ${header:+-H "$header"} "${script[@]}" "$base")
  t1=$(ticks "${tpid[$inst]}")
  r1=$(ticks "${rpid[$inst]}")
  [ "$round" = 0 ] && return 0
  if echo "$out" | grep -q 'Non-2xx'; then echo "$name: non-2xx answers" >&2; echo "$out" >&2; exit 1; fi
  local requests rps p99 rss info
  requests=$(echo "$out" | awk '/requests in/ {print $1}')
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}' | to_ms)
  rss=$(awk '/VmRSS/ {print $2}' "/proc/${tpid[$inst]}/status")
  info=$(redis-cli -p "${rport[$inst]}" info memory | tr -d '\r')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$sweep" "$name" "$vs" "$rps" "$p99" \
    "$(echo "($t1 - $t0 + $r1 - $r0) * 1000000 / $hz / $requests" | bc -l)" \
    "$(echo "($r1 - $r0) * 1000000 / $hz / $requests" | bc -l)" "$rss" \
    "$(echo "$info" | awk -F: '/^used_memory:/ {print $2}')" \
    "$(echo "$info" | awk -F: '/^used_memory_rss:/ {print $2}')" \
    "$(redis-cli -p "${rport[$inst]}" dbsize)" >>"$work/results"
}

for entry in "${cases[@]}"; do IFS='|' read -r sweep name inst kind bytes tags header vs <<<"$entry"
  run_case 1 0 "$sweep" "$name" "$inst" "$kind" "$bytes" "$tags" "$header" "$vs"; done
for round in $(seq "$rounds"); do
  for entry in "${cases[@]}"; do IFS='|' read -r sweep name inst kind bytes tags header vs <<<"$entry"
    run_case "$secs" "$round" "$sweep" "$name" "$inst" "$kind" "$bytes" "$tags" "$header" "$vs"; done
done

# Redis round trips per request on the miss path (MONITOR over 100 requests; commands that Lua
# scripts run inside Redis are not round trips and are left out).
round_trips() {
  local inst=$1 path=$2 sample=100 count monitor_pid urls=() i
  for i in $(seq "$sample"); do urls+=("http://127.0.0.1:${tport[$inst]}${path//\{i\}/$i}"); done
  redis-cli -p "${rport[$inst]}" monitor >"$work/monitor" &
  monitor_pid=$!
  until grep -q '^OK' "$work/monitor" 2>/dev/null; do sleep 0.02; done
  curl -sf "${urls[@]}" >/dev/null
  redis-cli -p "${rport[$inst]}" echo round-trips-done >/dev/null
  until grep -q 'round-trips-done' "$work/monitor"; do sleep 0.02; done
  kill "$monitor_pid"; wait "$monitor_pid" 2>/dev/null || true
  count=$(grep -v '^OK' "$work/monitor" | grep -v 'lua\]' | grep -v -c 'round-trips-done' || true)
  awk -v c="$count" -v n="$sample" 'BEGIN {printf "%.2f", c / n}'
}
{
  echo "miss 1 KiB, 1 tag	$(round_trips miss '/miss/1024/1/rt1-{i}')"
  echo "miss 1 KiB, 26 tags	$(round_trips miss '/miss/1024/26/rt26-{i}')"
  echo "hit 1 KiB, ${ref_keys} keys, 1 tag	$(round_trips "k$ref_keys" '/hit/1024/1/{i}')"
} >"$work/round_trips"

echo
echo "wrk -t1 -c$conns, ${secs}s per case, $rounds interleaved rounds (medians of per-round values and"
echo "ratios), $(nproc) cores (shared), $(date -u '+%Y-%m-%d %H:%M UTC'); keyspaces built in $(printf '%.1f' "$fill_secs") s"
echo "CPU µs/req: user + system time of the target process and its redis-server over the case,"
echo "per request (wrk's own CPU not counted). Ratios: median over the rounds (range in brackets)."
python3 - "$work/results" "$work/round_trips" "$ref_keys" "$ref" <<'PY'
import statistics, sys
from collections import defaultdict
rows = defaultdict(dict)   # case -> round -> values
sweep_of, vs_of, order = {}, {}, []
for line in open(sys.argv[1]):
    rnd, sweep, name, vs, rps, p99, cpu, rcpu, rss, used, used_rss, dbsize = line.rstrip("\n").split("\t")
    if name not in sweep_of:
        sweep_of[name], vs_of[name] = sweep, vs
        order.append(name)
    rows[name][rnd] = dict(rps=float(rps), p99=float(p99), cpu=float(cpu), rcpu=float(rcpu), rss=int(rss),
                           used=int(used), used_rss=int(used_rss), keys=int(dbsize))
trips = dict(line.rstrip("\n").split("\t") for line in open(sys.argv[2]))
ref_keys, ref = sys.argv[3], sys.argv[4]
med = statistics.median

def m(name, field):
    return med(v[field] for v in rows[name].values())
def ratios(name, other, field="rps"):
    return [rows[name][r][field] / rows[other][r][field] for r in rows[name] if r in rows[other]]
def ratio(name, other, field="rps"):
    return med(ratios(name, other, field))
def spread(name, other, field="rps"):
    # The median ratio, and its range over the rounds when there are several.
    values = ratios(name, other, field)
    if len(values) < 2 or name == other:
        return f"{med(values):.2f}"
    return f"{med(values):.2f} ({min(values):.2f}–{max(values):.2f})"
def mib(b):
    return f"{b / 1048576:.1f}"
def rss_max(name):
    return max(v["rss"] for v in rows[name].values()) / 1024

def table(title, names, extra):
    print(f"\n{title}\n")
    head = ["case", "req/s", "p99 ms", "CPU µs/req", "of which Redis"] + [h for h, _ in extra] + ["service RSS MiB", "redis used MiB", "redis RSS MiB"]
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
    for n in names:
        cells = [n, f"{m(n, 'rps'):.0f}", f"{m(n, 'p99'):.2f}", f"{m(n, 'cpu'):.1f}", f"{m(n, 'rcpu'):.1f}"]
        cells += [f(n) for _, f in extra]
        cells += [f"{rss_max(n):.1f}", mib(m(n, "used")), mib(m(n, "used_rss"))]
        print("| " + " | ".join(cells) + " |")

body = [n for n in order if sweep_of[n] in ("ref", "body")]
table("Body size (hits spread over %s keys; bare = the same body from memory, no cache filter)" % ref_keys,
      body,
      [("vs ref hit", lambda n: spread(n, ref)),
       ("vs bare same size", lambda n: spread(n, vs_of[n]))])
keys = [ref] + [n for n in order if sweep_of[n] == "keys"]
table("Live keys (1 KiB entries, 1 tag, hits spread over every key)", keys,
      [("vs ref hit", lambda n: spread(n, ref)),
       ("keys in redis", lambda n: f"{m(n, 'keys'):.0f}")])
tags = [ref] + [n for n in order if sweep_of[n] == "tags"]
table("Tags per entry (1 KiB, %s keys)" % ref_keys, tags,
      [("vs ref hit", lambda n: spread(n, ref)),
       ("CPU vs ref", lambda n: spread(n, ref, "cpu"))])
miss = [n for n in order if sweep_of[n] == "miss"]
table("Miss path (every request a new key: lookup + origin + store) against the same body uncached",
      miss,
      [("cost vs uncached (req/s)", lambda n: spread(vs_of[n], n)),
       ("CPU vs uncached", lambda n: spread(n, vs_of[n], "cpu")),
       ("extra CPU µs/req", lambda n: f"{m(n, 'cpu') - m(vs_of[n], 'cpu'):.1f}"),
       ("redis round trips", lambda n: trips.get(n, "-"))])
print(f"\nround trips per hit ({ref}): {trips.get(ref, '-')}")
PY
echo "total: $(( $(date +%s) - started )) s"
