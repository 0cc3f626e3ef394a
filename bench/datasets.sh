#!/usr/bin/env bash
# Dataset build over a large capture store: seeds ROWS realistic interactions
# with feedback (examples/seed.rs), starts the gateway on that database, and
# times `flywheel datasets build` for two specs, reporting the gateway's peak
# RSS (VmHWM) around each build.
#
#   bench/datasets.sh                 # 1,000,000 rows
#   ROWS=100000 bench/datasets.sh     # quicker
#   KEEP=1 bench/datasets.sh          # reuse the seeded database in $DIR
#
# Targets: 1M rows in <= 60 s with <= 300 MB peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-1000000}
DIR=${DIR:-/tmp/flywheel-datasets-bench}
PORT=${PORT:-19501}
B=target/release/flywheel

[ "${SKIP_BUILD:-}" = 1 ] || cargo build --release --locked --bin flywheel --example seed
mkdir -p "$DIR"
DB="$DIR/bench.db"
if [ "${KEEP:-}" != 1 ] || [ ! -f "$DB" ]; then
  rm -rf "$DB" "$DB-wal" "$DB-shm" "$DIR/bench-datasets"
  echo "seeding $ROWS interactions into $DB" >&2
  # A fixed seed and end of window: every run seeds the same database.
  target/release/examples/seed --db "$DB" --rows "$ROWS" --seed 42 --until-ms 1795600000000
fi
rm -rf "$DIR/bench-datasets"

export FLYWHEEL_ADMIN_TOKEN=bench FLYWHEEL_URL="http://127.0.0.1:$PORT" FLYWHEEL_LOG=warn
"$B" serve --listen "127.0.0.1:$PORT" --upstream http://127.0.0.1:9/v1 --db "$DB" >"$DIR/gw.log" 2>&1 &
GW=$!
trap 'kill $GW 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -sf -o /dev/null "$FLYWHEEL_URL/healthz" && break; sleep 0.2; done

hwm() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$GW/status"; }
rss() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$GW/status"; }

run() {
  local name=$1; shift
  local before start end out
  before=$(rss)
  start=$(date +%s.%N)
  out=$("$B" datasets build "$@" --json 2>"$DIR/progress-$name.log")
  end=$(date +%s.%N)
  python3 - "$name" "$start" "$end" "$before" "$(hwm)" <<EOF
import json, sys
name, start, end, before, hwm = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
m = json.loads('''$out''')
c = m["counts"]
secs = end - start
print(f"| {name} | {c['scanned']:,} | {c['kept']:,} | {c['train']:,} / {c['eval']:,} | {c['pairs']:,} | {secs:.1f} | {c['scanned']/secs:,.0f} | {before} | {hwm} |")
EOF
}

echo
echo "| spec | scanned | kept | train / eval | pairs | seconds | rows/s | RSS before (MiB) | peak RSS (MiB) |"
echo "|---|---|---|---|---|---|---|---|---|"
run all
run thumbs-up --thumbs-up --near-threshold 0.75
echo
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); db $(du -h "$DB" | cut -f1)"
