"""The chaos soak's shared pieces: its constants, small helpers (say, free_port, http, wait_for,
tail), DynamoDB values compared by DynamoDB's semantics (canon, digest, key_of, poisoned) and the
parsing of eddy's Prometheus metrics."""
import base64
import decimal
import hashlib
import json
import os
import socket
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FAKES = REPO / "tests" / "fakes"
REGION = "us-east-1"
# The marker of changes the replica refuses for good (the sink proxy's --refuse-containing).
POISON = "REFUSE-ME"
KINDS = ["throttle", "5xx", "latency", "drop"]
SEGMENTS = 4
# The metrics summed over the processes at the end: (label, metric, labels it must contain).
METRICS = [
    ("in", "eddy_records_in_total", ""),
    ("out replica", "eddy_records_out_total", 'sink="replica"'),
    ("out log", "eddy_records_out_total", 'sink="log"'),
    ("dead-lettered", "eddy_records_dead_lettered_total", ""),
    ("snapshot items", "eddy_snapshot_items_total", ""),
    ("sink errors", "eddy_sink_errors_total", ""),
    ("throttled", "eddy_throttled_total", ""),
]


def say(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, timeout=10):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        return answer.read().decode()


def wait_for(what, check, timeout, every=0.1):
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except Exception:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not happen within {timeout} s")
        time.sleep(every)


# --- DynamoDB values, compared by DynamoDB's semantics ------------------------------------------


def canon(value):
    """One attribute value (DynamoDB JSON, B as bytes or base64 text) in a canonical form:
    numbers by value, sets sorted, binary as base64."""
    (kind, v), = value.items()
    if kind == "N":
        return {"N": str(decimal.Decimal(v).normalize())}
    if kind == "NS":
        return {"NS": sorted(str(decimal.Decimal(n).normalize()) for n in v)}
    if kind == "B":
        return {"B": b64(v)}
    if kind == "BS":
        return {"BS": sorted(b64(b) for b in v)}
    if kind == "SS":
        return {"SS": sorted(v)}
    if kind == "L":
        return {"L": [canon(x) for x in v]}
    if kind == "M":
        return {"M": {k: canon(x) for k, x in v.items()}}
    return {kind: v}  # S, BOOL, NULL


def b64(v):
    return base64.b64encode(v).decode() if isinstance(v, (bytes, bytearray)) else v


def canon_item(item):
    return json.dumps({k: canon(v) for k, v in item.items()}, sort_keys=True)


def key_of(keys):
    """An item's identity: its key attributes, canonical."""
    return canon_item(keys)


def digest(record):
    """What a delivered change must keep of the stream record: event, keys, images."""
    d = record["dynamodb"]
    text = json.dumps(
        [
            record["eventName"],
            canon_item(d["Keys"]),
            canon_item(d["NewImage"]) if "NewImage" in d else None,
            canon_item(d["OldImage"]) if "OldImage" in d else None,
        ]
    )
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def poisoned(record):
    """Whether the change carries the marker the replica refuses (in `note` of its new image)."""
    note = (record["dynamodb"].get("NewImage") or {}).get("note", {})
    return POISON in note.get("S", "")


def tail(path, lines):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            return "\n".join(f.read().decode(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def parse_metrics(text):
    """Prometheus text → {name: {labels text: value}}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, _, value = line.rpartition(" ")
        name, _, labels = name_labels.partition("{")
        try:
            out.setdefault(name, {})["{" + labels if labels else ""] = float(value)
        except ValueError:
            pass
    return out


def metric_sum(scrapes, name, contains=""):
    return int(sum(v for s in scrapes for labels, v in s.get(name, {}).items() if contains in labels))

