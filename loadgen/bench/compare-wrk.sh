#!/usr/bin/env bash
# Side-by-side against the same built-in sink, in one run:
#   wrk -t1 -c50 (1 KiB POST)  vs  c24-loadgen bench -c 50 (1 KiB POST)
# prints both requests/s and their ratio (goal: >= 1.0), bench's peak RSS,
# and the fixed-rate checks (stalls in the corrected p90; 80,000/s honest).
#
# Installs nothing: skips (exit 0) with a message when wrk is absent.
#   bash loadgen/bench/compare-wrk.sh            # 10 s per run
#   DURATION=5s bash loadgen/bench/compare-wrk.sh
set -euo pipefail

DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-50}"
# Alternating rounds, medians compared: one round each is at the mercy of
# whatever else the machine does during it.
ROUNDS="${ROUNDS:-3}"
here="$(cd "$(dirname "$0")/../.." && pwd)"

if ! command -v wrk >/dev/null 2>&1; then
    echo "compare-wrk: wrk is not installed (Debian package 'wrk'); skipping the comparison."
    exit 0
fi

cargo build --release --quiet -p c24-loadgen --manifest-path "$here/Cargo.toml"
target_dir="$(cargo metadata --format-version 1 --no-deps --manifest-path "$here/Cargo.toml" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
bin="$target_dir/release/c24-loadgen"
work="$(mktemp -d)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# Starts a sink with extra flags; sets $url.
start_sink() {
    "$bin" sink --listen 127.0.0.1:0 --threads 1 "$@" >"$work/sink.out" 2>&1 &
    pids+=("$!")
    for _ in $(seq 1 100); do
        if grep -q 'listening on' "$work/sink.out"; then break; fi
        sleep 0.05
    done
    url="$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$work/sink.out")/ingest"
    [ -n "$url" ] || { echo "the sink did not start"; cat "$work/sink.out"; exit 1; }
}

json() { python3 -c "import json,sys; d=json.load(open('$1')); print($2)"; }

start_sink
cat >"$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = string.rep("x", 1024)
wrk.headers["Content-Type"] = "application/octet-stream"
LUA

echo "== full speed, $CONNECTIONS connections, $DURATION x $ROUNDS rounds each, 1 KiB POST, same sink ($url)"
wrk_all=()
bench_all=()
rss_max=0
for round in $(seq 1 "$ROUNDS"); do
    wrk -t1 -c"$CONNECTIONS" -d"$DURATION" -s "$work/post.lua" "$url" >"$work/wrk.txt"
    w="$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$work/wrk.txt")"
    "$bin" bench "$url" -c "$CONNECTIONS" -d "$DURATION" --body-bytes 1024 --report-json "$work/bench.json" >/dev/null
    b="$(json "$work/bench.json" "round(d['requests_per_second'], 1)")"
    r="$(json "$work/bench.json" "round(d['max_rss_kib'] / 1024, 1)")"
    echo "round $round: wrk -t1 -c$CONNECTIONS $w/s, c24-loadgen bench -c $CONNECTIONS $b/s (peak RSS ${r} MiB)"
    wrk_all+=("$w")
    bench_all+=("$b")
done
python3 - "${wrk_all[*]}" "${bench_all[*]}" <<'PY'
import statistics, sys
w = statistics.median(float(x) for x in sys.argv[1].split())
b = statistics.median(float(x) for x in sys.argv[2].split())
print(f"median wrk {w:.1f}/s, median bench {b:.1f}/s, ratio bench / wrk: {b / w:.2f}")
PY

echo "== fixed rate 80000/s, 5s, steady sink, 400 connections"
"$bin" bench "$url" -c 400 -d 5s --rate 80000 --report-json "$work/rate.json" >/dev/null
json "$work/rate.json" "'achieved %.1f/s of 80000/s (%.2f%%), scheduler lag p99 %dus, lagging=%s' % (d['requests_per_second'], 100*d['achieved_ratio'], d['scheduler_lag_us']['p99'], d['lagging'])"

echo "== fixed rate 2000/s, 10s, sink stalling 500 ms every 2 s"
start_sink --stall-ms 500 --stall-every 2s
"$bin" bench "$url" -c "$CONNECTIONS" -d 10s --rate 2000 --report-json "$work/stall.json" >/dev/null
json "$work/stall.json" "'corrected p90 %.1fms, uncorrected p90 %.2fms, achieved %.1f/s' % (d['latency_us']['corrected']['p90']/1000, d['latency_us']['uncorrected']['p90']/1000, d['requests_per_second'])"
