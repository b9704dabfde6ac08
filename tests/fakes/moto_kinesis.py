#!/usr/bin/env python3
"""moto_server, with Kinesis resharding and sequence numbers as AWS has them.

moto 5's Kinesis differs from AWS where eddy's Kinesis source depends on it, so this script
patches it before serving (every other API is moto's own):

  - SplitShard and MergeShards close the parents and open empty children; moto moves or copies
    the parents' records into the children, where AWS leaves them in the parents.
  - New records go to the open shard owning their hash key; moto may pick a closed parent.
  - MergeShards accepts the two shards in either order when they are adjacent.
  - GetRecords on a closed shard read to its end answers without NextShardIterator and with
    ChildShards (SHARD_END); moto never ends a shard.
  - Sequence numbers are 56-digit numbers that grow across the stream, as AWS's do; moto counts
    from 1 in each shard.

Usage: moto_kinesis.py -H 127.0.0.1 -p PORT (the arguments of moto_server).
"""
import itertools
import sys

from moto.core.responses import ActionResult
from moto.kinesis.exceptions import InvalidArgumentError
from moto.kinesis.models import Record, Shard, Stream
from moto.kinesis.responses import KinesisResponse
from moto.kinesis.utils import decompose_shard_iterator
from moto.server import main

# Real Kinesis sequence numbers look like this one (56 digits).
BASE = 49590338271490256608559692538361571095921575989136588898
_next = itertools.count(1)


def put_record(self, partition_key, data, explicit_hash_key):
    sequence_number = BASE + next(_next)
    self.records[sequence_number] = Record(partition_key, data, sequence_number, explicit_hash_key)
    return str(sequence_number)


def get_shard_for_key(self, partition_key, explicit_hash_key):
    original = Stream._moto_get_shard_for_key
    open_shards = {k: s for k, s in self.shards.items() if s.is_open}
    everything, self.shards = self.shards, open_shards
    try:
        return original(self, partition_key, explicit_hash_key)
    finally:
        self.shards = everything


def _new_id(stream):
    return max(s._shard_id for s in stream.shards.values()) + 1


def split_shard(self, shard_to_split, new_starting_hash_key):
    new_start = int(new_starting_hash_key)
    shard = self.shards[shard_to_split]
    if not shard.is_open or not shard.starting_hash < new_start < shard.ending_hash:
        raise InvalidArgumentError(message=f"cannot split {shard_to_split} at {new_start}")
    first = Shard(_new_id(self), shard.starting_hash, new_start - 1, parent=shard.shard_id)
    self.shards[first.shard_id] = first
    second = Shard(_new_id(self), new_start, shard.ending_hash, parent=shard.shard_id)
    self.shards[second.shard_id] = second
    shard.is_open = False


def merge_shards(self, shard_to_merge, adjacent_shard_to_merge):
    a = self.shards[shard_to_merge]
    b = self.shards[adjacent_shard_to_merge]
    low, high = (a, b) if a.starting_hash < b.starting_hash else (b, a)
    if not (a.is_open and b.is_open) or low.ending_hash + 1 != high.starting_hash:
        raise InvalidArgumentError(message=f"{shard_to_merge} and {adjacent_shard_to_merge} are not adjacent open shards")
    child = Shard(_new_id(self), low.starting_hash, high.ending_hash, parent=a.shard_id, adjacent_parent=b.shard_id)
    self.shards[child.shard_id] = child
    a.is_open = False
    b.is_open = False


def get_records(self):
    stream_arn = self._get_param("StreamARN")
    iterator = self._get_param("ShardIterator")
    limit = self._get_param("Limit")
    next_iterator, records, millis_behind_latest = self.kinesis_backend.get_records(stream_arn, iterator, limit)
    stream_name, shard_id, _ = decompose_shard_iterator(iterator)
    stream = self.kinesis_backend.describe_stream(stream_arn=stream_arn, stream_name=stream_name)
    shard = stream.get_shard(shard_id)
    _, _, last = decompose_shard_iterator(next_iterator)
    body = {"Records": [r.to_json() for r in records], "MillisBehindLatest": millis_behind_latest}
    if not shard.is_open and int(last) >= shard.get_max_sequence_number():
        body["ChildShards"] = [
            {
                "ShardId": s.shard_id,
                "ParentShards": [p for p in (s.parent, s.adjacent_parent) if p],
                "HashKeyRange": {"StartingHashKey": str(s.starting_hash), "EndingHashKey": str(s.ending_hash)},
            }
            for s in stream.shards.values()
            if shard.shard_id in (s.parent, s.adjacent_parent)
        ]
    else:
        body["NextShardIterator"] = next_iterator
    return ActionResult(body)


Shard.put_record = put_record
Stream._moto_get_shard_for_key = Stream.get_shard_for_key
Stream.get_shard_for_key = get_shard_for_key
Stream.split_shard = split_shard
Stream.merge_shards = merge_shards
KinesisResponse.get_records = get_records

if __name__ == "__main__":
    main(sys.argv[1:])
