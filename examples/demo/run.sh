#!/usr/bin/env bash
# eddy's main job, end to end, on a fresh machine: a live migration.
#   DynamoDB table and its stream (moto_server on loopback) → only-dogs (Wasm) → Alternator-
#   compatible replica. Installs what is missing (wasm32-wasip2 target, moto[server]), builds eddy
#   and the example component, writes pets (some before the table even has a stream), starts eddy
#   (a snapshot of the table, then the stream), keeps writing while it runs, and shows that the
#   replica ends with exactly the source's dogs.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"

bash tests/setup.sh
cargo build --quiet --workspace --bins

work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
endpoint="http://127.0.0.1:$port"
export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_REGION=us-east-1

moto_server -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
moto=$!
eddy_pid=""
cleanup() {
  [ -n "$eddy_pid" ] && kill "$eddy_pid" 2>/dev/null || true
  kill "$moto" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 100); do
  python3 -c "import urllib.request; urllib.request.urlopen('$endpoint')" 2>/dev/null && break
  sleep 0.1
done

sed -e "s|@ENDPOINT@|$endpoint|g" -e "s|@REPO@|$repo|g" examples/demo/pipeline.yaml >"$work/pipeline.yaml"
echo "== pipeline: $work/pipeline.yaml"
target/debug/eddy validate --config "$work/pipeline.yaml"

python3 examples/demo/pets.py setup --endpoint "$endpoint"
python3 examples/demo/pets.py existing --endpoint "$endpoint"

echo "== running eddy (log: $work/eddy.log)"
target/debug/eddy run --config "$work/pipeline.yaml" 2>"$work/eddy.log" &
eddy_pid=$!
status=0
python3 examples/demo/pets.py live --endpoint "$endpoint" || status=$?
python3 examples/demo/pets.py verify --endpoint "$endpoint" --timeout 60 || status=$?
grep -o 'snapshot progress.*segments=[0-9]*' "$work/eddy.log" | tail -1 | sed 's/\x1b\[[0-9;]*m//g' || true
kill -INT "$eddy_pid"
wait "$eddy_pid" || status=$?
eddy_pid=""
grep -o 'stopped: .*' "$work/eddy.log" | sed 's/\x1b\[[0-9;]*m//g' || true
if [ "$status" -ne 0 ]; then
  echo "demo FAILED; eddy's log:"; cat "$work/eddy.log"; exit 1
fi
echo "demo OK"
