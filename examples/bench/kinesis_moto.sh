#!/usr/bin/env bash
# Measures the Kinesis source: records/s and records per eddy CPU-second reading N DynamoDB
# changes (default 20,000 of ~1.3 KB, both images) from a Kinesis stream of SHARDS shards (default
# 4) into the null sink, on moto (tests/fakes/moto_kinesis.py) on loopback.
#   cargo build --release -p eddy && N=20000 SHARDS=4 bash examples/bench/kinesis_moto.sh
# moto answers GetRecords in Python, so on moto it is the limit, not eddy: compare the wall time
# with the CPU time eddy used. eddy's CPU time includes its start-up and the idle polls until the
# last record is counted.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
n=${N:-20000}
shards=${SHARDS:-4}
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
metrics=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
endpoint="http://127.0.0.1:$port"
export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_REGION=us-east-1
python3 "$repo/tests/fakes/moto_kinesis.py" -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null' EXIT
for _ in $(seq 100); do python3 -c "import urllib.request; urllib.request.urlopen('$endpoint')" 2>/dev/null && break; sleep 0.1; done
python3 - "$endpoint" "$n" "$shards" <<'PY'
import json, sys, time, boto3
ep, n, shards = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
k = boto3.client("kinesis", endpoint_url=ep, region_name="us-east-1")
k.create_stream(StreamName="pets-cdc", ShardCount=shards)
now = int(time.time() * 1000)
def image(i, v):
    return {"pk": {"S": f"pet-{i:06d}"}, "sk": {"N": str(i % 7)}, "species": {"S": ["dog", "cat", "bird"][i % 3]},
            "name": {"S": f"pet number {i}"}, "version": {"N": str(v)}, "tags": {"SS": ["a", "b"]},
            "owner": {"M": {"city": {"S": "Berlin"}, "zip": {"S": "10115"}}}, "notes": {"S": "x" * 400}}
batch = []
for i in range(n):
    rec = {"awsRegion": "us-east-1", "eventID": f"e{i}", "eventName": "MODIFY", "userIdentity": None,
           "recordFormat": "application/json", "tableName": "Pets", "eventSource": "aws:dynamodb",
           "dynamodb": {"ApproximateCreationDateTime": now + i, "Keys": {"pk": {"S": f"pet-{i:06d}"}, "sk": {"N": str(i % 7)}},
                        "NewImage": image(i, 2), "OldImage": image(i, 1), "SizeBytes": 1200}}
    batch.append({"Data": json.dumps(rec).encode(), "PartitionKey": f"pet-{i:06d}"})
    if len(batch) == 500 or i == n - 1:
        k.put_records(StreamName="pets-cdc", Records=batch)
        batch = []
print(f"put {n} records of {len(json.dumps(rec))} bytes into {shards} shards")
PY
cat > "$work/p.yaml" <<Y
source: {type: kinesis, stream_name: pets-cdc, endpoint: "$endpoint", region: us-east-1, max_records_per_poll: 10000}
checkpoints: {type: local, path: state}
sinks:
  out: {type: "null"}
routes: [{name: all, sinks: [out]}]
metrics: {listen: "127.0.0.1:$metrics"}
Y
start=$(date +%s.%N)
/usr/bin/time -f "%U %S %M" -o "$work/time" "$repo/target/release/eddy" run --config "$work/p.yaml" 2>"$work/log" &
timer=$!
until curl -sf "http://127.0.0.1:$metrics/metrics" 2>/dev/null | awk -v n="$n" '$1=="eddy_records_in_total" && $2>=n {found=1} END {exit !found}'; do
  kill -0 $timer 2>/dev/null || { echo "eddy stopped early; its log:" >&2; tail -5 "$work/log" >&2; exit 1; }
  sleep 0.05
done
end=$(date +%s.%N)
pkill -INT -f "eddy run --config $work/p.yaml"
wait $timer
read -r u s m < "$work/time"
python3 -c "
n=$n; wall=$end-$start; cpu=$u+$s
print(f'kinesis -> null, $shards shards: {n} records in {wall:.1f}s = {n/wall:.0f} records/s; eddy CPU {cpu:.2f}s = {n/cpu:.0f} records per eddy CPU-second; peak RSS {$m/1024:.0f} MiB')"
