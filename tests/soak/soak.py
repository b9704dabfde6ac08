#!/usr/bin/env python3
"""eddy's chaos soak: a live replication under kills, faults, a shard split and a sink outage,
checked record by record at the end.

What runs (all on loopback, in a temporary folder):

  - moto_server with splittable DynamoDB Streams shards (tests/fakes/moto_streams.py): table
    `Pets` (the source, NEW_AND_OLD_IMAGES stream) and `Replica` (the target);
  - three fault proxies (tests/fakes/faults.py), one per role, each injecting --fault-rate faults
    (throttling with AWS's error JSON, 5xx, latency, dropped connections): the source (DescribeTable,
    the snapshot's Scan and the stream API), the sink (the Alternator sink's writes to `Replica`;
    it also refuses for good every write of an item carrying the marker REFUSE-ME, and serves the
    outage) and the lease table `Leases`;
  - --processes eddy processes sharing the stream through the lease table, each with two sinks on
    one route, the Alternator sink `replica` and a file sink `log` (the sink's log: one JSON line
    per change record delivered), its own file dead letter and its own metrics port;
  - a writer of inserts, updates and deletes on --keys keys, every DynamoDB attribute type.

What happens, in order: half the keys are written before the stream exists, so the snapshot
(`snapshot: {mode: first_run, segments: 4}`) has items to copy; the stream is enabled and a few
updates are made; the eddy processes start; the writer starts. While it writes --operations
operations, by its progress: --kills SIGKILLs of a random process (the first while the snapshot
runs, the others at random moments; each process restarted 0.5-3 s later), a shard split at
40 %, a sink outage of --outage-seconds at 55 % (every request to `Replica` answers 500).
About --poison-rate of the writes carry the marker; the writer always changes such an item again
later (so the source never ends with one), and the replica refuses them: they are the dead
letter's records. The snapshot's keys are never deleted before the snapshot is done, so the scan
must deliver each of them.

The checks at the end (the process exits 0 only if all pass; 1 with what differs otherwise):

  1. replica == source: both scanned, items compared by DynamoDB's semantics (numbers by value,
     sets unordered).
  2. in == out ∪ dead letter: every stream record (read from TRIM_HORIZON of every shard, from
     moto directly) and every snapshot item is in a sink's log or in a dead letter; nothing is
     there that was not read; each logged record equals the stream's (keys, event, images).
  3. the dead letter holds only changes the replica refused (stage sink, sink replica, carrying
     the marker): nothing good was dead-lettered.
  4. the snapshot delivered every item that existed throughout the scan, and nothing else than
     the items that existed during it.
  5. the chaos happened: every kill, the split (both shards read to the end or to the tip, the
     parent checkpointed SHARD_END, the child at its last record), the outage (writes refused with
     500), faults of every kind on every proxy; every graceful stop (SIGTERM) exited 0 and no
     process exited by itself (--allow-exits: reported only).

Usage:
  python3 tests/soak/soak.py --small                     # ~3 minutes (what CI runs)
  python3 tests/soak/soak.py --operations 200000 --kills 50 --seed 1   # the long run

Needs python3 with boto3 and moto[server] (tests/setup.sh installs them) and the eddy binary
(--eddy; default target/debug/eddy). See tests/soak/README.md.
"""
import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

# The soak's modules beside this file (common, cluster, writer, checks), whatever the working
# directory and however the script is started.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from checks import Delivered, compare, read_stream, scan, table_state  # noqa: E402
from cluster import Eddy, Proxy, Service, configure, create_tables  # noqa: E402
from common import (  # noqa: E402
    FAKES,
    KINDS,
    METRICS,
    POISON,
    REGION,
    REPO,
    free_port,
    http,
    key_of,
    metric_sum,
    say,
    tail,
    wait_for,
)
from writer import Writer, watch_snapshot  # noqa: E402

# moto accepts any credentials; these keep real ones out of the soak's processes.
os.environ.update(
    AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_REGION=REGION, AWS_DEFAULT_REGION=REGION
)
os.environ.pop("AWS_SESSION_TOKEN", None)
os.environ.pop("AWS_PROFILE", None)

import boto3  # noqa: E402  (after the credentials above)
from botocore.config import Config as BotoConfig  # noqa: E402


# --- the soak -------------------------------------------------------------------------------


def options():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--eddy", type=Path, default=REPO / "target" / "debug" / "eddy", help="the eddy binary")
    p.add_argument("--small", action="store_true", help="the CI size: about 3 minutes on 2 cores (debug build)")
    p.add_argument("--operations", type=int, default=20000, help="writes after eddy started")
    p.add_argument("--keys", type=int, default=400, help="the key space (half of it exists before eddy starts)")
    p.add_argument("--processes", type=int, default=3, help="eddy processes on the lease table")
    p.add_argument("--kills", type=int, default=10, help="SIGKILLs at random moments of the writes")
    p.add_argument("--fault-rate", type=float, default=0.1, help="faults per request on every proxy")
    p.add_argument("--outage-seconds", type=float, default=30, help="the sink outage (every Replica write: 500)")
    p.add_argument("--write-rate", type=float, default=100, help="the writer's operations per second (at most)")
    p.add_argument("--poison-rate", type=float, default=0.005, help="share of writes the replica refuses")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument(
        "--converge-timeout", type=float, default=900, help="seconds to wait for the replica after the writes"
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (it is kept anyway on failure)")
    p.add_argument(
        "--allow-exits",
        action="store_true",
        help="an eddy process that exits by itself (it is restarted either way) is reported, not a failure: "
        "to see the other checks through against a build with a known exit bug",
    )
    p.add_argument(
        "--sabotage",
        choices=["replica", "log"],
        help="break something on purpose to see the checks fail: delete a replica item before the comparison, "
        "or lose one logged record",
    )
    o = p.parse_args()
    if o.small:
        # ~3 minutes on 2 cores with a debug build: every kind of event, at a smaller size. The
        # outage keeps its full 30 s (the catch-up after it is part of what is tested).
        small = {"operations": 3000, "keys": 300, "processes": 3, "kills": 4, "write_rate": 40, "converge_timeout": 300}
        for name, value in small.items():
            if getattr(o, name) == p.get_default(name):
                setattr(o, name, value)
    if o.seed is None:
        o.seed = random.randrange(1, 1_000_000)
    return o


class Soak:
    """One soak: set up, write under chaos, wait for convergence, stop, check, report."""

    def __init__(self, o):
        self.o = o
        self.rng = random.Random(o.seed)
        self.folder = Path(tempfile.mkdtemp(prefix="eddy-soak-"))
        self.started = time.monotonic()
        self.services, self.workers = [], []
        self.failures, self.notes = [], []
        self.kills = []  # (seconds since the start, process)
        self.snapshot_kill = False
        self.split = None  # moto_streams' answer to POST /_split
        self.outage_started = None

    # -- setting up ------------------------------------------------------------------------

    def set_up(self):
        """moto, the proxies, the tables, the items before the stream, the stream."""
        o = self.o
        port = free_port()
        self.moto_url = f"http://127.0.0.1:{port}"
        argv = [sys.executable, str(FAKES / "moto_streams.py"), "-H", "127.0.0.1", "-p", str(port)]
        self.services.append(Service("moto", argv, self.folder / "moto.log"))
        boto = BotoConfig(retries={"max_attempts": 10, "mode": "standard"}, read_timeout=30)
        self.db = boto3.client("dynamodb", endpoint_url=self.moto_url, region_name=REGION, config=boto)
        self.streams = boto3.client("dynamodbstreams", endpoint_url=self.moto_url, region_name=REGION, config=boto)
        wait_for("moto", lambda: self.db.list_tables() is not None, 30)
        rate = ["--rate", str(o.fault_rate), "--latency-ms", "200"]
        self.proxies = {
            "source": Proxy("source", self.moto_url, rate, self.folder),
            "sink": Proxy("sink", self.moto_url, [*rate, "--refuse-containing", POISON], self.folder),
            "leases": Proxy("leases", self.moto_url, rate, self.folder),
        }
        self.services += self.proxies.values()

        create_tables(self.db)
        writer_db = boto3.client("dynamodb", endpoint_url=self.moto_url, region_name=REGION, config=boto)
        self.writer = Writer(writer_db, self.rng, o.keys, o.operations, o.write_rate, o.poison_rate)
        self.writer.prepare()
        stream = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
        self.db.update_table(TableName="Pets", StreamSpecification=stream)
        self.arn = self.db.describe_table(TableName="Pets")["Table"]["LatestStreamArn"]
        self.writer.before_eddy(20)
        before = len(self.writer.initial)
        say(f"{before} items before the stream, 20 changes after it; starting {o.processes} eddy processes")

    def start_eddy(self):
        """Writes a config per process (checked with `eddy validate` first) and starts them."""
        o = self.o
        named = True
        probe = configure(self.folder, 0, self.proxies, free_port())
        check = subprocess.run([str(o.eddy), "validate", "--config", str(probe)], capture_output=True, text=True)
        if check.returncode != 0 and "unknown field `name`" in check.stderr:
            # An eddy from before pipelines had names: run without the key rather than not at all.
            named = False
            self.notes.append("this eddy binary does not know the top-level `name:` key: the soak ran without it")
            say(self.notes[-1])
        elif check.returncode != 0:
            raise RuntimeError(f"eddy validate refused the config:\n{check.stdout}{check.stderr}")
        for n in range(o.processes):
            metrics_port = free_port()
            config = configure(self.folder, n, self.proxies, metrics_port, named)
            self.workers.append(Eddy(n, o.eddy, config, metrics_port, self.folder))
        for w in self.workers:
            w.start()

    # -- the run ---------------------------------------------------------------------------

    def tend(self):
        """Restarts the processes that are due (killed, or exited by themselves)."""
        for w in self.workers:
            w.check_exit()
            if w.proc is None and w.restart_at is not None and time.monotonic() >= w.restart_at:
                w.start()

    def write_under_chaos(self):
        """Runs the writer; by its progress: the kills, the split, the outage."""
        o, writer = self.o, self.writer
        watching = threading.Event()
        threading.Thread(target=watch_snapshot, args=(self.db, writer, watching), daemon=True).start()
        kill_at = sorted(self.rng.uniform(0.02, 0.97) for _ in range(o.kills))
        writer.start()
        shown = time.monotonic()
        while writer.thread.is_alive():
            progress = writer.done / max(1, o.operations)
            self.tend()
            if time.monotonic() - shown >= 60:
                shown = time.monotonic()
                say(f"{writer.done:,} of {o.operations:,} writes, {len(self.kills)} kills")
            # The first kill lands in the snapshot, once it is under way (if it still is).
            in_snapshot = writer.snapshot_started.is_set() and not writer.snapshot_done.is_set()
            if in_snapshot and kill_at and not self.snapshot_kill:
                self.snapshot_kill = True
                self.kill(progress, " (during the snapshot)")
                kill_at.pop(0)
            if kill_at and progress >= kill_at[0]:
                kill_at.pop(0)
                self.kill(progress)
            if self.split is None and progress >= 0.40:
                self.split = json.loads(http("POST", f"{self.moto_url}/_split?table=Pets"))
                s = self.split
                say(f"split: {s['parent']} closed at {s['ending_sequence_number']}, child {s['child']}")
            if self.outage_started is None and progress >= 0.55 and o.outage_seconds > 0:
                self.proxies["sink"].outage(o.outage_seconds, "*")
                self.outage_started = time.monotonic()
                say(f"sink outage: every Replica request answers 500 for {o.outage_seconds:g} s")
            time.sleep(0.05)
        watching.set()
        self.writes_ended = time.monotonic()
        if writer.error:
            raise RuntimeError(f"the writer failed: {writer.error}")
        say(f"writes done: {writer.counts} in {self.writes_ended - self.started:.0f} s")
        # Bring back the processes killed at the very end, and let the outage end.
        while any(w.proc is None for w in self.workers):
            self.tend()
            time.sleep(0.1)
        if self.outage_started is not None:
            time.sleep(max(0, self.outage_started + o.outage_seconds - time.monotonic()))

    def kill(self, progress, why=""):
        running = [w for w in self.workers if w.alive()]
        if not running:
            return
        victim = self.rng.choice(running)
        victim.kill(restart_in=self.rng.uniform(0.5, 3))
        self.kills.append((round(time.monotonic() - self.started, 1), victim.n))
        say(f"SIGKILL process {victim.n} at {progress:.0%} of the writes{why} ({len(self.kills)}/{self.o.kills})")

    def converge(self):
        """Waits for the replica to equal the source, then for every stream record to be in a
        log or a dead letter."""
        self.delivered = Delivered(self.folder, self.o.processes, sabotage_log=self.o.sabotage == "log")
        source = table_state(self.db, "Pets")
        self.source_items = len(source)
        deadline = time.monotonic() + self.o.converge_timeout
        diffs = compare(source, table_state(self.db, "Replica"))
        while diffs and time.monotonic() < deadline:
            time.sleep(2)
            self.tend()
            diffs = compare(source, table_state(self.db, "Replica"))
        self.converged = None if diffs else time.monotonic() - self.writes_ended
        outcome = f"equals the source {self.converged:.0f} s" if not diffs else "still differs"
        say(f"replica {outcome} after the writes")
        self.stream, self.layout = read_stream(self.streams, self.arn)
        # The log is written with the replica, in the same batches: once the replica is there, the
        # log follows within seconds, or a record is missing.
        deadline = min(deadline, time.monotonic() + 120)
        self.delivered.refresh()
        while not self.delivered.covers(self.stream) and time.monotonic() < deadline:
            time.sleep(2)
            self.delivered.refresh()

    def stop(self):
        """Metrics first (a killed process's counters died with it), then SIGTERM to all at once;
        then `eddy leases` (every lease released, the checkpoints where the stops left them)."""
        self.scrapes = [w.scrape() for w in self.workers]
        self.exit_codes = {}
        threads = [
            threading.Thread(target=lambda w=w: self.exit_codes.__setitem__(w.n, w.terminate())) for w in self.workers
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.delivered.refresh()
        config = str(self.workers[0].config)
        self.leases_report = subprocess.run(
            [str(self.o.eddy), "leases", "--config", config], capture_output=True, text=True, timeout=60
        )
        if self.o.sabotage == "replica":
            victim = scan(self.db, "Replica")[0]
            self.db.delete_item(TableName="Replica", Key={"pk": victim["pk"], "sk": victim["sk"]})
            say("sabotage: deleted one replica item before the comparison")

    # -- the checks ------------------------------------------------------------------------

    def expect(self, ok, what, detail=""):
        if not ok:
            self.failures.append(what + (f":\n    {detail}" if detail else ""))

    def check(self):
        o, d, expect = self.o, self.delivered, self.expect
        diffs = compare(table_state(self.db, "Pets"), table_state(self.db, "Replica"))
        expect(not diffs, f"replica == source ({len(diffs)} differences)", "\n    ".join(diffs[:10]))

        # in == out ∪ dl, for the stream's records (by sequence number)
        stream = set(self.stream)
        out, dl = set(d.out), set(d.dl)
        self.missing = stream - out - dl
        self.unknown = (out | dl) - stream
        expect(not self.missing, f"every stream record is in a log or a dead letter ({len(self.missing)} missing)",
               ", ".join(sorted(self.missing)[:10]))
        expect(not self.unknown, f"nothing delivered that the stream does not hold ({len(self.unknown)} unknown)",
               ", ".join(sorted(self.unknown)[:10]))
        changed = [s for s in out & stream if d.out_digest[s] != self.stream[s][0]]
        changed += [s for s in dl & stream if d.dl_digest[s] != self.stream[s][0]]
        changed += d.mismatched
        expect(not changed, f"delivered records equal the stream's ({len(changed)} differ)",
               ", ".join(sorted(changed)[:10]))
        expect(not d.bad_dl, f"the dead letter holds only changes the replica refused ({len(d.bad_dl)} others)",
               "\n    ".join(d.bad_dl[:5]))

        # the snapshot, by key
        w = self.writer
        required = {key_of(w.key(i)) for i in w.initial}
        allowed = required | {key_of(w.key(i)) for i in w.optional}
        self.snapshot = set(d.snapshot_out) | set(d.snapshot_dl)
        lacking, extra = required - self.snapshot, self.snapshot - allowed
        expect(not lacking, f"the snapshot delivered every item it had to ({len(lacking)} missing)",
               ", ".join(sorted(lacking)[:5]))
        expect(not extra, f"the snapshot delivered only items that existed during it ({len(extra)} others)",
               ", ".join(sorted(extra)[:5]))

        # the chaos happened, and eddy read through it
        expect(len(self.kills) == o.kills, f"{o.kills} kills done ({len(self.kills)})")
        expect(self.split is not None, "the shard split happened")
        if self.split is not None:
            self.check_split()
        self.faults = {name: p.faults()["counts"] for name, p in self.proxies.items()}
        if o.outage_seconds > 0:
            expect(self.faults["sink"]["outage"] > 0, "the sink outage failed writes")
        if o.fault_rate > 0:
            for name, counts in self.faults.items():
                expect(all(counts[k] > 0 for k in KINDS), f"faults of every kind on the {name} proxy", str(counts))
        clean = all(code == 0 for code in self.exit_codes.values())
        expect(clean, "every graceful stop exited 0", str(self.exit_codes))
        self.exits = [(w.n, code, log) for w in self.workers for code, log in w.exits]
        exit_logs = "\n    ".join(f"process {n}: exit {c}\n{log}" for n, c, log in self.exits[:3])
        if o.allow_exits and self.exits:
            n = len(self.exits)
            self.notes.append(f"{n} eddy process exits by themselves (--allow-exits); the first:\n{exit_logs}")
        else:
            expect(not self.exits, f"no eddy process exited by itself ({len(self.exits)} did)", exit_logs)

    def check_split(self):
        """Both shards were read through: every record of each in a log or a dead letter, the
        parent's lease checkpointed SHARD_END, the child's at its last record."""
        d, split = self.delivered, self.split
        shards = {s[0]: s for s in self.layout}
        child = shards.get(split["child"])
        end = int(split["ending_sequence_number"])
        parent_seqs = [s for s in self.stream if int(s) <= end]
        child_seqs = [s for s in self.stream if int(s) > end]
        delivered = lambda seqs: bool(seqs) and all(s in d.out or s in d.dl for s in seqs)  # noqa: E731
        named = child is not None and child[1] == split["parent"]
        self.expect(named, "the child shard names its parent", str(self.layout))
        self.expect(delivered(parent_seqs), "the parent shard was read to its end")
        self.expect(delivered(child_seqs), "the child shard was read")
        try:
            rows = {it["shard_id"]["S"]: it.get("checkpoint", {}).get("S") for it in scan(self.db, "Leases")}
        except self.db.exceptions.ResourceNotFoundException:
            rows = {}  # eddy never created its lease table
        self.expect(rows.get(split["parent"]) == "SHARD_END", "the parent shard's lease is checkpointed SHARD_END",
                    f"{split['parent']}: {rows.get(split['parent'])}")
        last = max(child_seqs, key=int) if child_seqs else None
        self.expect(rows.get(split["child"]) == last, "the child shard's lease is checkpointed at its last record",
                    f"{split['child']}: {rows.get(split['child'])}, last record {last}")

    # -- the report ------------------------------------------------------------------------

    def report(self):
        o, d, w, c = self.o, self.delivered, self.writer, self.writer.counts
        out, dl = set(d.out), set(d.dl)
        out_snap, dl_snap = set(d.snapshot_out), set(d.snapshot_dl)
        marked = {s for s, (_, p) in self.stream.items() if p}
        both = len(out & dl) + len(out_snap & dl_snap)
        again = sum(d.out.values()) - len(out) + sum(d.snapshot_out.values()) - len(out_snap)
        entries = sum(d.dl.values()) + sum(d.snapshot_dl.values())
        kill_times = [k[0] for k in self.kills]
        kills = f"{kill_times[:12]}{' ...' if len(kill_times) > 12 else ''}"
        if self.snapshot_kill:
            kills += " (the first during the snapshot)"
        split = f"{self.split['parent']} -> {self.split['child']}" if self.split else "not done"
        replica = "differs"
        if self.converged is not None:
            replica = f"equal to the source {self.converged:.0f} s after the writes"
        metrics = ", ".join(f"{label} {metric_sum(self.scrapes, name, labels):,}" for label, name, labels in METRICS)

        def faults(name, counts):
            total = sum(counts[k] for k in KINDS) + counts["forwarded"]
            return f"{name}: " + ", ".join(f"{k} {counts[k]}" for k in KINDS) + f" of {total:,}"

        def shard(s):
            child = f"child of {s[1][-8:]}, " if s[1] else ""
            return f"{s[0][-8:]} ({child}{s[4]:,} records{', closed' if s[3] else ''})"

        lines = [
            "",
            "eddy soak summary",
            f"  seed            {o.seed}{' (--small)' if o.small else ''}; folder {self.folder}",
            f"  operations      {o.operations:,} after eddy started: {c['insert']:,} inserts, "
            f"{c['update']:,} updates, {c['put']:,} overwrites, {c['delete']:,} deletes "
            f"({c['poison']:,} marked for refusal, {c['heal']} healed at the end)",
            f"                  before them: {len(w.initial)} items before the stream, 20 changes before eddy; "
            f"{o.keys} keys",
            f"  processes       {o.processes}; SIGKILLs {len(self.kills)} at s {kills}; "
            f"starts {sum(x.starts for x in self.workers)}; exits by themselves {len(self.exits)}",
            f"  split           {split}",
            f"  shards          {'; '.join(shard(s) for s in self.layout)}",
            f"  outage          {o.outage_seconds:g} s of 500s on every Replica request "
            f"({self.faults['sink']['outage']:,} answered so)",
            f"  faults          {'; '.join(faults(n, c) for n, c in self.faults.items())}",
            f"                  the sink refused {self.faults['sink']['refused']} writes (ValidationException, "
            "marked items)",
            f"  in              {len(self.stream) + len(self.snapshot):,} = {len(self.stream):,} stream records "
            f"+ {len(self.snapshot)} snapshot items",
            f"  out (log)       {len(out) + len(out_snap):,} distinct ({len(out):,} stream, {len(out_snap)} snapshot); "
            f"{again:,} deliveries again (at least once)",
            f"  dead letter     {len(dl) + len(dl_snap)} distinct ({len(dl)} stream, {len(dl_snap)} snapshot) "
            f"in {entries} entries; of the {len(marked)} marked stream records, {len(marked - dl)} are not in it "
            "(replaced in their batch, never sent)",
            f"  in = out ∪ dl   missing {len(self.missing)}, unknown {len(self.unknown)}; "
            f"out ∩ dl {both} (the log sink also has what the replica refused)",
            f"  torn log lines  {len(d.torn)} (a SIGKILL mid-write; the record after the fragment is kept)",
            f"  metrics         (of the processes at the end; the counters of killed processes are lost) {metrics}",
            f"  replica         {self.source_items} items at the end; {replica}",
            f"  elapsed         {time.monotonic() - self.started:.0f} s",
        ]
        lines += [f"  note            {note}" for note in self.notes]
        print("\n".join(lines), flush=True)
        if d.torn:
            print("  torn lines:\n    " + "\n    ".join(f"{f}: {t[:120]}" for f, t in d.torn[:5]))
        print("\neddy leases at the end:\n" + self.leases_report.stdout + self.leases_report.stderr, flush=True)

    # -- all of it -------------------------------------------------------------------------

    def run(self):
        o = self.o
        passed = False
        say(
            f"soak: seed {o.seed}, {o.operations} operations on {o.keys} keys, {o.processes} processes, "
            f"{o.kills} kills, faults {o.fault_rate:.0%}, outage {o.outage_seconds:g} s; folder {self.folder}"
        )
        try:
            self.set_up()
            self.start_eddy()
            self.write_under_chaos()
            self.converge()
            self.stop()
            self.check()
            self.report()
            if self.failures:
                print("FAILED:\n  - " + "\n  - ".join(self.failures), flush=True)
                return 1
            print("PASSED: every check", flush=True)
            passed = True
            return 0
        except Exception as e:
            print(f"\nthe soak could not run to its end: {e!r}", flush=True)
            for w in self.workers:
                print(f"--- process {w.n} log (tail) ---\n{tail(w.log, 15)}")
            return 1
        finally:
            for w in self.workers:
                if w.proc is not None:
                    w.proc.kill()
                    w.proc.wait()
            for s in self.services:
                s.stop()
            if passed and not o.keep:
                shutil.rmtree(self.folder, ignore_errors=True)
            else:
                print(f"logs and files kept in {self.folder}", flush=True)


def main():
    o = options()
    # SIGTERM (a CI timeout, `timeout`) ends the soak like Ctrl-C: through the clean-up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not o.eddy.exists():
        print(f"no eddy binary at {o.eddy} (build it, or pass --eddy)", file=sys.stderr)
        return 2
    return Soak(o).run()


if __name__ == "__main__":
    sys.exit(main())
