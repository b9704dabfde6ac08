#!/usr/bin/env python3
"""moto_server whose DynamoDB Streams shards can split, for the chaos soak (tests/soak/).

moto 5 gives a table's stream one shard that never closes, so a reader's shard-split path
(read the parent to its end, then its child) is never exercised against it. DynamoDB splits
shards on its own, so a test cannot ask for a split either; this script patches moto before
serving so that a test can:

  POST /_split?table=NAME[&region=R]
      closes the table's open stream shard (it gets an EndingSequenceNumber: its last record's)
      and opens a child shard (ParentShardId = the closed one) that receives every later change.
      Answers {"parent": ID, "child": ID, "ending_sequence_number": "..."}; 409 when the open
      shard has no record yet (DynamoDB never closes an empty shard).
  GET /_split?table=NAME[&region=R]
      the table's shards: [{"id", "parent", "start", "end", "records"}].

What else differs from moto (every other API is moto's own):

  - DescribeStream lists the closed shards, oldest first, with their EndingSequenceNumber and
    ParentShardId, then the open one.
  - GetShardIterator finds any shard of the stream by id (ResourceNotFoundException otherwise).
  - GetRecords on a closed shard answers without NextShardIterator once the answer reaches the
    shard's end (SHARD_END), in the same answer as its last records, as DynamoDB Streams may.
  - Sequence numbers grow across shards: a child's first is above its parent's last.
  - Shard iterators expire 15 minutes after they were handed out (ExpiredIteratorException), as
    DynamoDB Streams' do; moto keeps every iterator forever, which a long soak feels as memory.
  - Requests are served one at a time. DynamoDB's conditional writes are atomic per item; moto's
    check-then-write is not when two server threads interleave, and a lease table shared by
    several processes would then see two owners win one conditional write, a fault of the fake.
  - GetRecords answers are written with json.dumps: moto's model-driven serializer takes seconds
    for a page of 1,000 records, and every other request (the lease table's too) would wait.

Usage: moto_streams.py -H 127.0.0.1 -p PORT
"""
import argparse
import base64
import datetime
import json
import logging
import os
import threading
import time
import urllib.parse
from collections import OrderedDict

from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.exceptions import JsonRESTError
from moto.dynamodb.models import dynamodb_backends
from moto.dynamodb.models.table import StreamShard
from moto.dynamodbstreams import models as streams
from moto.dynamodbstreams.responses import DynamoDBStreamsHandler
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

PREFIX = "com.amazonaws.dynamodb.v20120810#"
# How long a shard iterator stays valid (DynamoDB Streams: 15 minutes).
ITERATOR_TTL = 15 * 60
# The gap between a parent's last sequence number and its child's first: sequence numbers of a
# stream grow, but not one by one across shards.
CHILD_GAP = 1_000_000

# One request at a time (see the module's docstring).
SERVE = threading.Lock()


class ApiError(JsonRESTError):
    """An AWS error answer (HTTP 400, `__type` with the DynamoDB prefix)."""

    def __init__(self, kind, message):
        super().__init__(PREFIX + kind, message)


# --- shards ---------------------------------------------------------------------------------

_original_init = StreamShard.__init__


def shard_init(self, account_id, table):
    _original_init(self, account_id, table)
    self.ending_sequence_number = None
    self.parent_id = None


def shard_to_json(self):
    rng = {"StartingSequenceNumber": str(self.starting_sequence_number)}
    if self.ending_sequence_number is not None:
        rng["EndingSequenceNumber"] = str(self.ending_sequence_number)
    out = {"ShardId": self.id, "SequenceNumberRange": rng}
    if self.parent_id:
        out["ParentShardId"] = self.parent_id
    return out


_original_add = StreamShard.add


def shard_add(self, old, new):
    # A write that looked up the shard before it closed still lands in the open one.
    open_shard = self.table.stream_shard
    if self.ending_sequence_number is not None and open_shard is not self:
        return open_shard.add(old, new)
    return _original_add(self, old, new)


def all_shards(table):
    """The table's stream shards, oldest first: the closed ones, then the open one."""
    shards = list(getattr(table, "closed_stream_shards", []))
    if table.stream_shard is not None:
        shards.append(table.stream_shard)
    return shards


def split(table):
    """Closes the table's open shard and opens its child; returns (parent, child)."""
    parent = table.stream_shard
    if parent is None:
        raise ValueError(f"table {table.name} has no stream")
    if not parent.items:
        raise ValueError(f"the open shard {parent.id} of {table.name} has no record yet")
    parent.ending_sequence_number = parent.starting_sequence_number + len(parent.items) - 1
    child = StreamShard(parent.account_id, table)
    # DynamoDB Streams shard ids: shardId-<20 digits>-<8 hex digits>.
    child.id = f"shardId-{int(time.time() * 1000):020d}-{os.urandom(4).hex()}"
    child.starting_sequence_number = parent.ending_sequence_number + CHILD_GAP
    child.parent_id = parent.id
    child.created_on = parent.created_on
    if not hasattr(table, "closed_stream_shards"):
        table.closed_stream_shards = []
    table.closed_stream_shards.append(parent)
    table.stream_shard = child
    return parent, child


# --- iterators and GetRecords ----------------------------------------------------------------


class Iterators(OrderedDict):
    """Shard iterators by id, forgotten ITERATOR_TTL after they were handed out."""

    def __setitem__(self, key, value):
        value.handed_out = time.monotonic()
        super().__setitem__(key, value)
        while self:
            oldest = next(iter(self.values()))
            if time.monotonic() - oldest.handed_out < ITERATOR_TTL:
                break
            self.popitem(last=False)


def iterator_get(self, limit=1000):
    shard = self.stream_shard
    items = shard.get(self.sequence_number, limit)
    position = self.sequence_number + len(items)
    answer = {"Records": items}
    if shard.ending_sequence_number is not None and position > shard.ending_sequence_number:
        return answer  # SHARD_END: no NextShardIterator
    kind = "AFTER_SEQUENCE_NUMBER" if items else "AT_SEQUENCE_NUMBER"
    at = position - 1 if items else self.sequence_number
    following = streams.ShardIterator(self.streams_backend, shard, kind, at)
    self.streams_backend.shard_iterators[following.arn] = following
    answer["NextShardIterator"] = following.arn
    return answer


def backend_init(self, region_name, account_id):
    streams.BaseBackend.__init__(self, region_name, account_id)
    self.shard_iterators = Iterators()


def describe_stream(self, arn):
    table = self._get_table_from_arn(arn)
    shards = all_shards(table)
    return {
        "StreamArn": arn,
        "StreamLabel": table.latest_stream_label,
        "StreamStatus": "ENABLED" if table.latest_stream_label else "DISABLED",
        "StreamViewType": table.stream_specification["StreamViewType"],
        "CreationRequestDateTime": shards[0].created_on if shards else None,
        "TableName": table.name,
        "KeySchema": table.schema,
        "Shards": [s.to_json() for s in shards],
    }


def get_shard_iterator(self, arn, shard_id, shard_iterator_type, sequence_number=None):
    table = self._get_table_from_arn(arn)
    shard = next((s for s in all_shards(table) if s.id == shard_id), None)
    if shard is None:
        raise ApiError("ResourceNotFoundException", f"Requested resource not found: Shard: {shard_id} in Stream: {arn}")
    iterator = streams.ShardIterator(self, shard, shard_iterator_type, sequence_number)
    self.shard_iterators[iterator.arn] = iterator
    return iterator


def get_records(self, iterator_arn, limit):
    iterator = self.shard_iterators.get(iterator_arn)
    if iterator is None or time.monotonic() - iterator.handed_out >= ITERATOR_TTL:
        raise ApiError("ExpiredIteratorException", "Iterator expired. The iterator was created over 15 minutes ago.")
    return iterator.get(limit)


def plain(value):
    """JSON for what a stream record holds besides JSON: its time (epoch seconds, as AWS
    writes it) and binary values."""
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:  # moto's utcnow() is naive UTC
            value = value.replace(tzinfo=datetime.timezone.utc)
        return round(value.timestamp(), 3)
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    raise TypeError(f"{type(value).__name__} is not JSON")


def handler_get_records(self):
    limit = self._get_param("Limit") or 1000
    return json.dumps(self.backend.get_records(self._get_param("ShardIterator"), limit), default=plain)


StreamShard.__init__ = shard_init
StreamShard.to_json = shard_to_json
StreamShard.add = shard_add
streams.ShardIterator.get = iterator_get
streams.DynamoDBStreamsBackend.__init__ = backend_init
streams.DynamoDBStreamsBackend.describe_stream = describe_stream
streams.DynamoDBStreamsBackend.get_shard_iterator = get_shard_iterator
streams.DynamoDBStreamsBackend.get_records = get_records
DynamoDBStreamsHandler.get_records = handler_get_records


# --- serving ---------------------------------------------------------------------------------


def reply(start_response, status, payload):
    body = json.dumps(payload).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def split_hook(environ, start_response):
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    name = query.get("table", [None])[0]
    region = query.get("region", ["us-east-1"])[0]
    try:
        table = dynamodb_backends[DEFAULT_ACCOUNT_ID][region].get_table(name)
    except Exception as e:  # moto's ResourceNotFound
        return reply(start_response, "404 Not Found", {"error": f"no table {name}: {e}"})
    if environ["REQUEST_METHOD"] == "GET":
        shards = [
            {
                "id": s.id,
                "parent": s.parent_id,
                "start": str(s.starting_sequence_number),
                "end": None if s.ending_sequence_number is None else str(s.ending_sequence_number),
                "records": len(s.items),
            }
            for s in all_shards(table)
        ]
        return reply(start_response, "200 OK", shards)
    try:
        parent, child = split(table)
    except ValueError as e:
        return reply(start_response, "409 Conflict", {"error": str(e)})
    answer = {"parent": parent.id, "child": child.id, "ending_sequence_number": str(parent.ending_sequence_number)}
    return reply(start_response, "200 OK", answer)


def make_app():
    moto_app = DomainDispatcherApplication(create_backend_app)

    def app(environ, start_response):
        with SERVE:
            if environ.get("PATH_INFO") == "/_split":
                return split_hook(environ, start_response)
            return moto_app(environ, start_response)

    return app


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args()
    os.environ.setdefault("MOTO_PORT", str(args.port))
    # One line per request would be most of a long soak's disk writes; errors still show.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    run_simple(args.host, args.port, make_app(), threaded=True)


if __name__ == "__main__":
    main()
