#!/usr/bin/env python3
"""A test-only CrateDB `/_sql` endpoint, following CrateDB's documented HTTP shapes.

Requests: POST /_sql with {"stmt": ..., "args": [...]} or {"stmt": ..., "bulk_args": [[...], ...]}.
Responses: {"cols": [], "rowcount": n} or, for bulk, {"cols": [], "results": [{"rowcount": 1},
{"rowcount": -2, "error": {"code": 4003, "message": ...}}]}; failures: HTTP 4xx/5xx with
{"error": {"code": 4xxx|5xxx, "message": ...}}.

It understands the statements eddy's cratedb sink sends (CREATE TABLE IF NOT EXISTS, the
INSERT ... ON CONFLICT upsert, DELETE ... WHERE pk = ?) on one table kept in memory. A row whose
`data.reject` is true fails with code 4003 (a permanent, per-row error). Options inject faults:
--fail-rate (HTTP 503 / code 5000, nothing applied), --slow-ms, and --user/--password (HTTP 401
otherwise). GET /_state returns the table, the operation log and counters.
"""
import argparse
import base64
import json
import random
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

UPSERT = re.compile(r'^INSERT INTO (\S+) \(pk, data, aux\) VALUES \(\?, \?, \?\) ON CONFLICT \((.+)\) DO UPDATE SET data = excluded\.data, aux = excluded\.aux$')
DELETE = re.compile(r'^DELETE FROM (\S+) WHERE pk = \?$')
CREATE = re.compile(r'^CREATE TABLE IF NOT EXISTS (\S+) \(pk OBJECT\(STRICT\) AS \((.+)\), data OBJECT\(DYNAMIC\), aux OBJECT\(IGNORED\)\)$')


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.rows = {}
        self.log = []
        self.created = []
        self.requests = 0
        self.failed = 0


def make_handler(state, opts):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def reply(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path != "/_state":
                return self.reply(404, {"error": {"code": 4040, "message": "not found"}})
            with state.lock:
                self.reply(200, {"rows": list(state.rows.values()), "log": state.log, "created": state.created,
                                 "requests": state.requests, "failed": state.failed})

        def do_POST(self):
            if self.path != "/_sql":
                return self.reply(404, {"error": {"code": 4040, "message": "not found"}})
            if opts.user:
                expected = "Basic " + base64.b64encode(f"{opts.user}:{opts.password}".encode()).decode()
                if self.headers.get("Authorization") != expected:
                    return self.reply(401, {"error": {"code": 4011, "message": "trust authentication failed for user"}})
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if opts.slow_ms:
                time.sleep(opts.slow_ms / 1000)
            with state.lock:
                state.requests += 1
                if random.random() < opts.fail_rate:
                    state.failed += 1
                    return self.reply(503, {"error": {"code": 5000, "message": "injected: node not available"}})
                stmt = body["stmt"]
                if m := CREATE.match(stmt):
                    state.created.append(stmt)
                    return self.reply(200, {"cols": [], "rowcount": 1})
                bulk = body.get("bulk_args")
                if bulk is None:
                    return self.reply(400, {"error": {"code": 4000, "message": f"SQLParseException[unsupported: {stmt}]"}})
                results = []
                if UPSERT.match(stmt):
                    for pk, data, aux in bulk:
                        if data.get("reject") is True:
                            results.append({"rowcount": -2, "error": {"code": 4003, "message": "Validation failed for data['reject']: refused on purpose"}})
                            continue
                        key = json.dumps(pk, sort_keys=True)
                        state.rows[key] = {"pk": pk, "data": data, "aux": aux}
                        state.log.append({"op": "upsert", "pk": pk, "data": data})
                        results.append({"rowcount": 1})
                elif DELETE.match(stmt):
                    for (pk,) in bulk:
                        key = json.dumps(pk, sort_keys=True)
                        existed = state.rows.pop(key, None) is not None
                        state.log.append({"op": "delete", "pk": pk})
                        results.append({"rowcount": 1 if existed else 0})
                else:
                    return self.reply(400, {"error": {"code": 4000, "message": f"SQLParseException[unsupported: {stmt}]"}})
                return self.reply(200, {"cols": [], "duration": 1.0, "results": results})

    return Handler


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--fail-rate", type=float, default=0.0)
    p.add_argument("--slow-ms", type=int, default=0)
    p.add_argument("--user")
    p.add_argument("--password", default="")
    p.add_argument("--seed", type=int, default=1)
    opts = p.parse_args()
    random.seed(opts.seed)
    server = ThreadingHTTPServer(("127.0.0.1", opts.port), make_handler(State(), opts))
    server.serve_forever()


if __name__ == "__main__":
    main()
