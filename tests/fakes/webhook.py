#!/usr/bin/env python3
"""A test-only webhook: records every request it is sent and answers as told.

POST or PUT any path: the request (method, path, Content-Type, Authorization, body) is kept.
Answers: the first --fail-first requests get HTTP 503 with `Retry-After: --retry-after`; a body
containing "poison" gets HTTP 400 `bad record: poison`; every other request 204. GET /_state
returns {"requests": [...], "answers": {"503": n, "400": n, "204": n}}.
"""
import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def make_handler(state, opts):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def answer(self, status, body=b"", headers=()):
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            with state["lock"]:
                state["answers"][str(status)] = state["answers"].get(str(status), 0) + 1

        def do_GET(self):
            with state["lock"]:
                body = json.dumps({"requests": state["requests"], "answers": state["answers"]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def receive(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
            with state["lock"]:
                state["seen"] += 1
                seen = state["seen"]
            if seen <= opts.fail_first:
                return self.answer(503, b"busy", [("Retry-After", str(opts.retry_after))])
            if "poison" in body:
                return self.answer(400, b"bad record: poison")
            with state["lock"]:
                state["requests"].append({
                    "method": self.command,
                    "path": self.path,
                    "content_type": self.headers.get("Content-Type"),
                    "authorization": self.headers.get("Authorization"),
                    "body": body,
                })
            self.answer(204)

        do_POST = receive
        do_PUT = receive

    return Handler


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--fail-first", type=int, default=0)
    p.add_argument("--retry-after", type=int, default=1)
    opts = p.parse_args()
    state = {"lock": threading.Lock(), "requests": [], "answers": {}, "seen": 0}
    ThreadingHTTPServer(("127.0.0.1", opts.port), make_handler(state, opts)).serve_forever()


if __name__ == "__main__":
    main()
