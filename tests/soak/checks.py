"""The chaos soak's reading back: the tables (scan, table_state, compare), the stream from
TRIM_HORIZON of every shard (read_stream) and what the sinks' logs and dead letters hold
(Delivered)."""
import json

from common import canon_item, digest, key_of, poisoned


def scan(client, table):
    items, start = [], None
    while True:
        kwargs = {"TableName": table, "ConsistentRead": True}
        if start:
            kwargs["ExclusiveStartKey"] = start
        page = client.scan(**kwargs)
        items += page["Items"]
        start = page.get("LastEvaluatedKey")
        if not start:
            return items


def table_state(client, table):
    return {key_of({"pk": it["pk"], "sk": it["sk"]}): canon_item(it) for it in scan(client, table)}


def compare(source, replica):
    """The differences between two table states, as readable lines."""
    diffs = []
    for k in sorted(source.keys() | replica.keys()):
        if k not in replica:
            diffs.append(f"missing from the replica: {k}")
        elif k not in source:
            diffs.append(f"in the replica, not in the source: {k}")
        elif source[k] != replica[k]:
            diffs.append(f"different: {k}\n      source:  {source[k][:300]}\n      replica: {replica[k][:300]}")
    return diffs


def read_stream(streams, arn):
    """Every record of the stream, from TRIM_HORIZON of every shard (moto directly): {seq:
    (digest, poisoned)}, and the shards [(id, parent, first seq, end seq or None, records)]."""
    shards = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    records, layout = {}, []
    for shard in shards:
        start = {"StreamArn": arn, "ShardId": shard["ShardId"], "ShardIteratorType": "TRIM_HORIZON"}
        iterator = streams.get_shard_iterator(**start)["ShardIterator"]
        count = 0
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            for record in page["Records"]:
                records[record["dynamodb"]["SequenceNumber"]] = (digest(record), poisoned(record))
                count += 1
            iterator = page.get("NextShardIterator")
            if not page["Records"]:
                break  # the open shard's tip (a closed one answers without NextShardIterator)
        rng = shard["SequenceNumberRange"]
        first, end = rng["StartingSequenceNumber"], rng.get("EndingSequenceNumber")
        layout.append((shard["ShardId"], shard.get("ParentShardId"), first, end, count))
    return records, layout


class Delivered:
    """What the sinks' logs and the dead letters hold, read incrementally (complete lines only)."""

    def __init__(self, folder, processes, sabotage_log=False):
        self.files = {}
        for n in range(processes):
            self.files[folder / f"log-{n}.jsonl"] = 0
            self.files[folder / f"dead-letter-{n}.jsonl"] = 0
        self.sabotage_log = sabotage_log
        self.out = {}  # stream seq -> lines
        self.out_digest = {}  # stream seq -> digest of its first line
        self.mismatched = []  # seqs whose lines differ from each other
        self.snapshot_out = {}  # snapshot key -> lines
        self.dl = {}  # stream seq -> entries
        self.dl_digest = {}
        self.snapshot_dl = {}
        self.bad_dl = []  # entries that are not the replica refusing a marked change
        self.torn = []  # lines that are not a whole record: (file, text)
        self.lines = 0

    def refresh(self):
        for path, offset in self.files.items():
            if not path.exists():
                continue
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read()
            end = data.rfind(b"\n") + 1
            self.files[path] = offset + end
            for line in data[:end].splitlines():
                if line.strip():
                    self.line(path, line.decode(errors="replace"))

    def line(self, path, text):
        self.lines += 1
        dead = path.name.startswith("dead-letter")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            # A SIGKILL during a write can leave part of a line, and the next start appends after
            # it. The whole record that follows is kept; the fragment is reported.
            self.torn.append((path.name, text[:200]))
            at = text.rfind('{"eventID"') if not dead else text.rfind('{"time"')
            if at <= 0:
                return
            try:
                value = json.loads(text[at:])
            except json.JSONDecodeError:
                return
        if dead:
            self.dead_entry(value)
        else:
            self.logged(value)

    def logged(self, record):
        if record.get("eventSource") == "eddy:snapshot":
            k = key_of(record["dynamodb"]["Keys"])
            self.snapshot_out[k] = self.snapshot_out.get(k, 0) + 1
            return
        seq = record["dynamodb"]["SequenceNumber"]
        if self.sabotage_log is True:
            self.sabotage_log = seq  # --sabotage log: the first record logged is "lost"
        if self.sabotage_log == seq:
            return
        d = digest(record)
        if seq in self.out_digest and self.out_digest[seq] != d:
            self.mismatched.append(seq)
        self.out_digest.setdefault(seq, d)
        self.out[seq] = self.out.get(seq, 0) + 1

    def dead_entry(self, entry):
        record = entry.get("record")
        ok = (
            record is not None
            and entry.get("stage") == "sink"
            and entry.get("name") == "replica"
            and entry.get("route") == "replicate"
            and poisoned(record)
        )
        if not ok:
            self.bad_dl.append(json.dumps(entry)[:400])
        if record is None:
            return
        if record.get("eventSource") == "eddy:snapshot":
            k = key_of(record["dynamodb"]["Keys"])
            self.snapshot_dl[k] = self.snapshot_dl.get(k, 0) + 1
            return
        seq = record["dynamodb"]["SequenceNumber"]
        self.dl_digest.setdefault(seq, digest(record))
        self.dl[seq] = self.dl.get(seq, 0) + 1

    def covers(self, stream):
        return all(s in self.out or s in self.dl for s in stream)
