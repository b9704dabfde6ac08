#!/usr/bin/env python3
"""A test-only DynamoDB Streams endpoint with a topology the test scripts.

moto gives one shard per stream; this speaks the DynamoDB Streams JSON 1.0 protocol
(`X-Amz-Target: DynamoDBStreams_20120810.<Operation>`) so that eddy's real SDK client reads many
shards, closed parents and their children, and trimmed data.

The script (--script FILE, JSON):
  {"stream_arn": "...", "view_type": "NEW_AND_OLD_IMAGES",
   "shards": [{"id": "shardId-1", "parent": null, "closed": true,
               "trim": "105",            # optional: records before this sequence number are gone
               "records": [{"seq": "100", "name": "INSERT", "keys": {...}, "new": {...}, "old": {...},
                            "at": 1.5}]}]}   # optional: visible only 1.5 s after the server started

Operations: DescribeStream (paginated by Limit/ExclusiveStartShardId), GetShardIterator
(TRIM_HORIZON, LATEST, AT/AFTER_SEQUENCE_NUMBER; TrimmedDataAccessException before the trim
point), GetRecords (Limit; no NextShardIterator at the end of a closed shard). Errors are the real
AWS error JSON. GET /_state returns how many GetRecords calls each shard got, and when the server
started (epoch seconds; `at` counts from then).
"""
import argparse
import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "com.amazonaws.dynamodb.v20120810#"


class ApiError(Exception):
    def __init__(self, kind, message, status=400):
        super().__init__(message)
        self.kind, self.message, self.status = kind, message, status


class Stream:
    def __init__(self, script):
        self.arn = script["stream_arn"]
        self.view_type = script.get("view_type", "NEW_AND_OLD_IMAGES")
        self.shards = script["shards"]
        self.by_id = {s["id"]: s for s in self.shards}
        self.calls = {s["id"]: 0 for s in self.shards}
        self.lock = threading.Lock()
        self.started = time.time()

    def visible(self, s):
        """How many of the shard's records have been written by now (see `at`)."""
        now = time.time() - self.started
        recs = s["records"]
        return next((i for i, r in enumerate(recs) if r.get("at", 0) > now), len(recs))

    def shard(self, shard_id):
        s = self.by_id.get(shard_id)
        if s is None:
            raise ApiError("ResourceNotFoundException", f"shard {shard_id} not found")
        return s

    def first_index(self, s):
        trim = s.get("trim")
        if trim is None:
            return 0
        return next((i for i, r in enumerate(s["records"]) if int(r["seq"]) >= int(trim)), len(s["records"]))

    def describe(self, body):
        limit = body.get("Limit", 100)
        start = body.get("ExclusiveStartShardId")
        ids = [s["id"] for s in self.shards]
        begin = ids.index(start) + 1 if start in ids else 0
        page = self.shards[begin : begin + limit]
        shards = []
        for s in page:
            recs = s["records"]
            rng = {"StartingSequenceNumber": recs[0]["seq"] if recs else "0"}
            if s.get("closed"):
                rng["EndingSequenceNumber"] = recs[-1]["seq"] if recs else "0"
            entry = {"ShardId": s["id"], "SequenceNumberRange": rng}
            if s.get("parent"):
                entry["ParentShardId"] = s["parent"]
            shards.append(entry)
        desc = {"StreamArn": self.arn, "StreamStatus": "ENABLED", "StreamViewType": self.view_type, "Shards": shards}
        if begin + limit < len(self.shards):
            desc["LastEvaluatedShardId"] = page[-1]["id"]
        return {"StreamDescription": desc}

    def iterator(self, body):
        s = self.shard(body["ShardId"])
        kind = body["ShardIteratorType"]
        recs = s["records"]
        first = self.first_index(s)
        if kind == "TRIM_HORIZON":
            index = first
        elif kind == "LATEST":
            index = len(recs)
        else:
            seq = int(body["SequenceNumber"])
            if s.get("trim") is not None and seq < int(s["trim"]):
                raise ApiError("TrimmedDataAccessException", f"sequence number {seq} is before the trim horizon {s['trim']}")
            index = next((i for i, r in enumerate(recs) if int(r["seq"]) >= seq), len(recs))
            if kind == "AFTER_SEQUENCE_NUMBER" and index < len(recs) and int(recs[index]["seq"]) == seq:
                index += 1
        return {"ShardIterator": encode(s["id"], index)}

    def records(self, body):
        shard_id, index = decode(body["ShardIterator"])
        s = self.shard(shard_id)
        with self.lock:
            self.calls[shard_id] += 1
        limit = body.get("Limit", 1000)
        recs = s["records"]
        page = recs[index : min(index + limit, self.visible(s))]
        end = index + len(page)
        out = {"Records": [self.record(s, r) for r in page]}
        if not (s.get("closed") and end >= len(recs)):
            out["NextShardIterator"] = encode(shard_id, end)
        return out

    def record(self, s, r):
        ddb = {
            "ApproximateCreationDateTime": int(self.started + r.get("at", 0)),
            "Keys": r["keys"],
            "SequenceNumber": r["seq"],
            "SizeBytes": 100,
            "StreamViewType": self.view_type,
        }
        if r.get("new") is not None:
            ddb["NewImage"] = r["new"]
        if r.get("old") is not None:
            ddb["OldImage"] = r["old"]
        return {
            "eventID": f"{s['id']}-{r['seq']}",
            "eventName": r["name"],
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "dynamodb": ddb,
        }


def encode(shard_id, index):
    return base64.b64encode(json.dumps([shard_id, index]).encode()).decode()


def decode(iterator):
    try:
        shard_id, index = json.loads(base64.b64decode(iterator))
        return shard_id, index
    except Exception:
        raise ApiError("ValidationException", "invalid ShardIterator")


def make_handler(stream):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def reply(self, status, payload):
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.0")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            with stream.lock:
                self.reply(200, {"get_records_calls": dict(stream.calls), "started": stream.started})

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            op = self.headers.get("X-Amz-Target", "").split(".")[-1]
            handlers = {"DescribeStream": stream.describe, "GetShardIterator": stream.iterator, "GetRecords": stream.records}
            try:
                if op not in handlers:
                    raise ApiError("UnknownOperationException", f"unsupported operation {op}")
                self.reply(200, handlers[op](body))
            except ApiError as e:
                self.reply(e.status, {"__type": PREFIX + e.kind, "message": e.message})

    return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--script", required=True)
    opts = parser.parse_args()
    with open(opts.script) as f:
        stream = Stream(json.load(f))
    ThreadingHTTPServer(("127.0.0.1", opts.port), make_handler(stream)).serve_forever()


if __name__ == "__main__":
    main()
