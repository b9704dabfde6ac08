#!/usr/bin/env bash
# Measures `eddy snapshot`: items/s and items per eddy CPU-second of a snapshot of N items (default
# 20,000 of ~0.7 KB) into the null sink and into Alternator, both on one moto_server on loopback.
#   cargo build --release -p eddy && N=20000 SEGMENTS=8 bash examples/bench/snapshot_moto.sh
# moto_server's Scan walks the whole table for every page, so on moto the scan is the limit, not
# eddy (compare the wall time with the CPU time eddy used).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
n=${N:-20000}
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
endpoint="http://127.0.0.1:$port"
export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_REGION=us-east-1
moto_server -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
moto=$!
trap 'kill $moto' EXIT
for _ in $(seq 100); do python3 -c "import urllib.request; urllib.request.urlopen('$endpoint')" 2>/dev/null && break; sleep 0.1; done
python3 - "$endpoint" "$n" <<'PY'
import sys, boto3
ep, n = sys.argv[1], int(sys.argv[2])
db = boto3.client("dynamodb", endpoint_url=ep, region_name="us-east-1")
for t in ("Pets", "Replica"):
    db.create_table(TableName=t, KeySchema=[{"AttributeName":"pk","KeyType":"HASH"},{"AttributeName":"sk","KeyType":"RANGE"}],
        AttributeDefinitions=[{"AttributeName":"pk","AttributeType":"S"},{"AttributeName":"sk","AttributeType":"N"}], BillingMode="PAY_PER_REQUEST")
reqs = [{"PutRequest":{"Item":{"pk":{"S":f"pet-{k:05d}"},"sk":{"N":str(k%7)},"species":{"S":["dog","cat","bird"][k%3]},
    "name":{"S":f"pet number {k}"},"tags":{"SS":["a","b"]},"owner":{"M":{"city":{"S":"Berlin"},"zip":{"S":"10115"}}},
    "notes":{"S":"x"*600}}}} for k in range(n)]
for i in range(0, n, 25):
    db.batch_write_item(RequestItems={"Pets": reqs[i:i+25]})
print(f"loaded {n} items")
PY
for sink in null alternator; do
  dir="$work/$sink"; mkdir -p "$dir"
  if [ $sink = null ]; then s='  out: {type: "null"}'; else s="  out: {type: alternator, endpoint: \"$endpoint\", region: us-east-1, table: Replica}"; fi
  cat > "$dir/p.yaml" <<Y
source: {type: dynamodb, table: Pets, endpoint: "$endpoint", region: us-east-1, snapshot: {segments: ${SEGMENTS:-8}}}
checkpoints: {type: local, path: state}
sinks:
$s
routes: [{name: all, sinks: [out]}]
Y
  start=$(date +%s.%N)
  /usr/bin/time -f "%U %S %M" -o "$dir/time" "$repo/target/release/eddy" snapshot --config "$dir/p.yaml" 2>"$dir/log"
  end=$(date +%s.%N)
  read u s m < "$dir/time"
  python3 -c "
n=$n; wall=$end-$start; cpu=$u+$s
print(f'$sink: {n} items in {wall:.1f}s = {n/wall:.0f} items/s; eddy CPU {cpu:.2f}s = {n/cpu:.0f} items per eddy CPU-second; peak RSS {$m/1024:.0f} MiB')"
done
