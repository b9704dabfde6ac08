#!/usr/bin/env python3
"""A test-only fault proxy for AWS endpoints (DynamoDB, DynamoDB Streams, SQS, S3).

Forwards every request to --upstream, except that at --rate it injects, taking turns:
  - throttling: HTTP 400 with the real AWS error JSON (`ThrottlingException` for DynamoDB,
    `LimitExceededException` for DynamoDB Streams), nothing forwarded
  - a 5xx: HTTP 500 `InternalServerError`, nothing forwarded
  - latency: --latency-ms before forwarding
  - a dropped connection: the request is read and the connection closed without an answer,
    nothing forwarded

With --check-sink FILE and --script FILE (the scripted stream), every lease-table checkpoint
write (UpdateItem setting `checkpoint`) is checked before it is forwarded: every scripted record
of that shard up to the checkpoint's sequence number must already be in FILE (a JSONL file sink
that fsyncs before it acknowledges). A checkpoint ahead of the sink is recorded as a violation.

With --fail-first N --fail-target OP, the first N requests for operation OP (e.g. BatchWriteItem)
fail with HTTP 500, whatever --rate says: an outage long enough to outlast every retry.
With --fail-containing TEXT --fail-target OP, every OP request whose body contains TEXT fails
with HTTP 500, always: a sink that refuses one key (a poison record) until someone fixes it.
POST /_faults/heal stops that. OP may also be PutObject: an S3 PUT whose body contains TEXT
fails with S3's 500 InternalError (S3 requests are forwarded whatever their method).

With --refuse-containing TEXT, every write (--refuse-target, default BatchWriteItem, PutItem and
UpdateItem) whose body contains TEXT is refused for good: HTTP 400 ValidationException, as
DynamoDB or Alternator refuse an item they cannot store (too large, a key or index type
mismatch). Nothing is forwarded; /_faults/heal does not end it.

POST /_faults/outage with {"seconds": S, "targets": ["BatchWriteItem", ...]} (or "targets": "*",
every operation) starts an outage: for S seconds every such request fails with HTTP 500, whatever
--rate says. With "hang": true the requests are not answered at all until the outage ends (a
server that accepts and never answers), then fail with HTTP 500. {"seconds": 0} ends it early.

With --delay-ms N, every request waits N ms before it is forwarded: a slow sink.

With --local-nodes A,B,C, GET /localnodes answers ["A","B","C"] (what a ScyllaDB Alternator node
answers: the live nodes of its datacenter); with --host H it listens on H instead of 127.0.0.1, so
that several proxies on 127.0.0.1, 127.0.0.2, ... share one port, as Alternator nodes do.

GET /_faults returns the counters (`refused` and `outage` count the requests those answered), the
violations, `writes`: the item count of every BatchWriteItem forwarded, in order, and
`outage_seconds_left`.
"""
import argparse
import http.client
import json
import random
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "com.amazonaws.dynamodb.v20120810#"
# Faults take turns, so that every kind shows up after a few injections.
KINDS = ["throttle", "5xx", "latency", "drop"]


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {
            "forwarded": 0,
            "throttle": 0,
            "5xx": 0,
            "latency": 0,
            "drop": 0,
            "checkpoints_checked": 0,
            "refused": 0,
            "outage": 0,
        }
        self.violations = []
        self.injected = 0
        self.outage = 0
        self.healed = False
        self.writes = []
        # POST /_faults/outage: until when (time.monotonic()), and which operations ("*": all).
        self.outage_until = 0.0
        self.outage_targets = []
        self.outage_hangs = False

    def in_outage(self, target):
        with self.lock:
            if time.monotonic() >= self.outage_until:
                return False
            return "*" in self.outage_targets or any(target.endswith("." + t) for t in self.outage_targets)

    def count(self, what):
        with self.lock:
            self.counts[what] += 1


def acknowledged(sink):
    seen = set()
    try:
        with open(sink) as f:
            for line in f:
                line = line.strip()
                if line:
                    seen.add(json.loads(line)["dynamodb"]["SequenceNumber"])
    except FileNotFoundError:
        pass
    return seen


def make_handler(opts, state, scripted):
    upstream = urllib.parse.urlparse(opts.upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def reply(self, status, payload, headers=()):
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            if not any(k.lower() == "content-type" for k, _ in headers):
                self.send_header("Content-Type", "application/x-amz-json-1.0")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/_faults":
                with state.lock:
                    left = max(0.0, state.outage_until - time.monotonic())
                    return self.reply(
                        200,
                        {
                            "counts": dict(state.counts),
                            "violations": list(state.violations),
                            "writes": list(state.writes),
                            "outage_seconds_left": left,
                        },
                    )
            if opts.local_nodes and self.path.split("?")[0] == "/localnodes":
                return self.reply(200, opts.local_nodes.split(","))
            self.forward(b"")

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            target = self.headers.get("X-Amz-Target", "")
            if self.path == "/_faults/heal":
                with state.lock:
                    state.healed = True
                return self.reply(200, {"healed": True})
            if self.path == "/_faults/outage":
                request = json.loads(body or b"{}")
                targets = request.get("targets", "*")
                with state.lock:
                    state.outage_targets = ["*"] if targets == "*" else list(targets)
                    state.outage_until = time.monotonic() + float(request.get("seconds", 0))
                    state.outage_hangs = bool(request.get("hang", False))
                return self.reply(200, {"outage_seconds": float(request.get("seconds", 0)), "targets": targets})
            if state.in_outage(target):
                state.count("outage")
                while state.outage_hangs and state.in_outage(target):
                    time.sleep(0.05)
                return self.reply(500, {"__type": PREFIX + "InternalServerError", "message": "outage (injected)"})
            poisoned = opts.fail_containing and opts.fail_containing.encode() in body and not state.healed
            if poisoned and opts.fail_target and target.endswith("." + opts.fail_target):
                state.count("5xx")
                return self.reply(500, {"__type": PREFIX + "InternalServerError", "message": "poison record (injected)"})
            if opts.fail_target and opts.fail_first and target.endswith("." + opts.fail_target):
                with state.lock:
                    state.outage += 1
                    down = state.outage <= opts.fail_first
                if down:
                    state.count("5xx")
                    return self.reply(500, {"__type": PREFIX + "InternalServerError", "message": "outage (injected)"})
            refusing = opts.refuse_containing and opts.refuse_containing.encode() in body
            if refusing and any(target.endswith("." + t) for t in opts.refuse_target.split(",")):
                state.count("refused")
                message = "One or more parameter values were invalid: the item cannot be stored (injected refusal)"
                return self.reply(400, {"__type": PREFIX + "ValidationException", "message": message})
            if random.random() < opts.rate:
                with state.lock:
                    state.injected += 1
                    fault = KINDS[state.injected % len(KINDS)]
                state.count(fault)
                if fault == "throttle":
                    kind = "LimitExceededException" if target.startswith("DynamoDBStreams") else "ThrottlingException"
                    return self.reply(400, {"__type": PREFIX + kind, "message": "Rate exceeded (injected)"})
                if fault == "5xx":
                    return self.reply(500, {"__type": PREFIX + "InternalServerError", "message": "injected"})
                if fault == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                time.sleep(opts.latency_ms / 1000)
            if opts.delay_ms:
                time.sleep(opts.delay_ms / 1000)
            if target.endswith(".BatchWriteItem"):
                items = sum(len(v) for v in json.loads(body or b"{}").get("RequestItems", {}).values())
                with state.lock:
                    state.writes.append(items)
            if opts.check_sink and target.endswith(".UpdateItem"):
                self.check(json.loads(body or b"{}"))
            self.forward(body)

        def do_PUT(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            poisoned = opts.fail_containing and opts.fail_containing.encode() in body and not state.healed
            if poisoned and opts.fail_target == "PutObject":
                state.count("5xx")
                error = b"<Error><Code>InternalError</Code><Message>poison object (injected)</Message></Error>"
                return self.reply(500, error, [("Content-Type", "application/xml")])
            self.forward(body)

        def do_DELETE(self):
            self.forward(b"")

        def do_HEAD(self):
            self.forward(b"")

        def check(self, request):
            cp = request.get("ExpressionAttributeValues", {}).get(":cp", {}).get("S")
            if cp is None or cp == "SHARD_END":
                return
            shard = request["Key"]["shard_id"]["S"]
            needed = [r["seq"] for r in scripted.get(shard, []) if int(r["seq"]) <= int(cp)]
            have = acknowledged(opts.check_sink)
            missing = [s for s in needed if s not in have]
            state.count("checkpoints_checked")
            if missing:
                with state.lock:
                    state.violations.append({"shard": shard, "checkpoint": cp, "missing": missing[:5]})

        def forward(self, body):
            conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=30)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
            headers["Host"] = upstream.netloc
            try:
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            finally:
                conn.close()
            state.count("forwarded")
            keep = [(k, v) for k, v in resp.getheaders() if k.lower() not in ("content-length", "connection", "transfer-encoding")]
            self.reply(resp.status, data, keep)

    return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--rate", type=float, default=0.1)
    parser.add_argument("--latency-ms", type=int, default=200)
    parser.add_argument("--check-sink")
    parser.add_argument("--script")
    parser.add_argument("--fail-first", type=int, default=0)
    parser.add_argument("--fail-target")
    parser.add_argument("--fail-containing")
    parser.add_argument("--refuse-containing")
    parser.add_argument("--refuse-target", default="BatchWriteItem,PutItem,UpdateItem")
    parser.add_argument("--delay-ms", type=int, default=0)
    parser.add_argument("--local-nodes")
    parser.add_argument("--host", default="127.0.0.1")
    opts = parser.parse_args()
    scripted = {}
    if opts.script:
        with open(opts.script) as f:
            scripted = {s["id"]: s["records"] for s in json.load(f)["shards"]}
    ThreadingHTTPServer((opts.host, opts.port), make_handler(opts, State(), scripted)).serve_forever()


if __name__ == "__main__":
    main()
