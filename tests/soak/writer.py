"""The chaos soak's writer: the application's inserts, updates and deletes on `Pets` (Writer,
with NAMES and CITIES for its values), and watch_snapshot, which tells it when the snapshot runs."""
import threading
import time

from checks import scan
from common import POISON, SEGMENTS, say


NAMES = ["Rex", "Tom", "Kitty", "Bubbles", "Nibbles", "Luna", "Max", "Bella", "Zoé", "日向"]
CITIES = ["Berlin", "Lyon", "Osaka", "Lima", "Oslo"]


class Writer:
    """Inserts, updates and deletes on `keys` keys of `Pets`, straight to moto (the application,
    not eddy, so it goes through no proxy). Runs as a thread; `done` is its progress."""

    def __init__(self, client, rng, keys, operations, rate, poison_rate):
        self.client = client
        self.rng = rng
        self.keys = keys
        self.operations = operations
        self.rate = rate
        self.poison_rate = poison_rate
        self.present = set()  # key indices that exist now
        self.initial = set()  # written before eddy started: the snapshot must deliver them
        self.optional = set()  # inserted while the snapshot ran: it may or may not see them
        self.poisoned = set()  # keys whose item carries the marker now
        self.cleanups = []  # (operation index, key): a poisoned key's next change is due
        self.snapshot_started = threading.Event()  # a segment has a checkpoint in the lease table
        self.snapshot_done = threading.Event()  # every segment is SHARD_END
        self.done = 0
        self.counts = {"insert": 0, "update": 0, "put": 0, "delete": 0, "poison": 0, "heal": 0}
        self.error = None
        self.thread = None
        self.serial = 0

    # keys and items

    def key(self, i):
        return {"pk": {"S": f"pet-{i // 4:04d}"}, "sk": {"N": str(i % 4)}}

    def item(self, i, poison=False):
        r = self.rng
        self.serial += 1
        item = {
            **self.key(i),
            "name": {"S": r.choice(NAMES)},
            "age": {"N": r.choice(["1", "2.5", "13", "0.125", "-4"])},
            "big": {"N": str(r.randrange(10**37, 10**38))},
            "alive": {"BOOL": r.random() < 0.7},
            "photo": {"B": r.randbytes(r.randint(1, 48))},
            "tags": {"SS": r.sample(["cute", "loud", "old", "fast", "shy", "big"], r.randint(1, 4))},
            "scores": {"NS": [str(x) for x in r.sample([1, 2, 3, 5, 8, 13, 21, 1e-3, 10**30], r.randint(1, 4))]},
            "blobs": {"BS": [r.randbytes(4) for _ in range(r.randint(1, 3))]},
            "profile": {
                "M": {
                    "city": {"S": r.choice(CITIES)},
                    "visits": {"N": "0"},
                    "prefs": {"M": {"food": {"S": "fish"}, "toys": {"L": [{"S": "ball"}, {"N": "3"}]}}},
                }
            },
            "history": {"L": [{"S": "born"}, {"N": str(self.serial)}, {"M": {"by": {"S": "soak"}}}]},
        }
        if r.random() < 0.3:
            item["nothing"] = {"NULL": True}
        if r.random() < 0.3:
            item["nickname"] = {"S": "x" * r.randint(1, 300)}
        if poison:
            item["note"] = {"S": f"{POISON} {self.serial}"}
        return item

    # operations

    def put(self, i, poison=False):
        self.client.put_item(TableName="Pets", Item=self.item(i, poison))

    def delete(self, i):
        self.client.delete_item(TableName="Pets", Key=self.key(i))

    def update(self, i, poison=False, clean=False):
        """One of several update expressions; `clean` removes the marker, `poison` sets it."""
        r = self.rng
        names, values = {}, {}
        choice = r.randrange(7)
        sets, removes, adds = [], [], []
        if choice == 0:
            sets += ["age = age + :d", "#n = :name"]
            names["#n"] = "name"
            values[":d"] = {"N": r.choice(["1", "0.5", "-2"])}
            values[":name"] = {"S": r.choice(NAMES)}
        elif choice == 1:
            adds.append("tags :tags")
            values[":tags"] = {"SS": [r.choice(["new", "calm", "wild", "cute"])]}
        elif choice == 2:
            sets += ["profile.visits = profile.visits + :one", "profile.city = :city"]
            values[":one"] = {"N": "1"}
            values[":city"] = {"S": r.choice(CITIES)}
        elif choice == 3:
            sets.append("history = list_append(history, :h)")
            values[":h"] = {"L": [{"S": "visit"}, {"N": str(r.randint(1, 10**6))}]}
        elif choice == 4:
            if r.random() < 0.5:
                removes.append("nickname")
            else:
                sets.append("nickname = :nick")
                values[":nick"] = {"S": "y" * r.randint(1, 200)}
        elif choice == 5:
            sets += ["scores = :ns", "big = :big"]
            values[":ns"] = {"NS": [str(r.randint(-1000, 1000)), "3.14159", "1E+5"]}
            values[":big"] = {"N": "-" + str(r.randrange(10**37, 10**38))}
        else:
            sets += ["photo = :b", "blobs = :bs", "alive = :t", "nothing = :null"]
            values[":b"] = {"B": r.randbytes(r.randint(1, 64))}
            values[":bs"] = {"BS": [r.randbytes(3), r.randbytes(5)]}
            values[":t"] = {"BOOL": r.random() < 0.5}
            values[":null"] = {"NULL": True}
        if poison:
            sets.append("note = :poison")
            values[":poison"] = {"S": f"{POISON} {self.serial}"}
            self.serial += 1
        if clean:
            removes.append("note")
        expression = ""
        if sets:
            expression += "SET " + ", ".join(sets)
        if removes:
            expression += " REMOVE " + ", ".join(removes)
        if adds:
            expression += " ADD " + ", ".join(adds)
        kwargs = {"TableName": "Pets", "Key": self.key(i), "UpdateExpression": expression.strip()}
        if names:
            kwargs["ExpressionAttributeNames"] = names
        if values:
            kwargs["ExpressionAttributeValues"] = values
        self.client.update_item(**kwargs)

    def one(self, op_index, allow_inserts=True):
        """One random operation; keeps the bookkeeping the checks need."""
        r = self.rng
        due = [c for c in self.cleanups if c[0] <= op_index]
        if due:
            self.cleanups.remove(due[0])
            i = due[0][1]
        else:
            i = r.randrange(self.keys)
            if not allow_inserts and i not in self.present:
                i = r.choice(sorted(self.present))
        clean = i in self.poisoned
        poison = not clean and r.random() < self.poison_rate
        if i not in self.present:
            self.put(i, poison)
            self.present.add(i)
            self.counts["insert"] += 1
            if not self.snapshot_done.is_set():
                self.optional.add(i)
        else:
            deletable = self.snapshot_done.is_set() or i not in self.initial
            x = r.random()
            if x < 0.25 and deletable and not poison:
                self.delete(i)
                self.present.discard(i)
                self.counts["delete"] += 1
            elif x < 0.4:
                self.put(i, poison)
                self.counts["put"] += 1
            else:
                self.update(i, poison, clean)
                self.counts["update"] += 1
        self.poisoned.discard(i)
        if poison:
            self.poisoned.add(i)
            self.counts["poison"] += 1
            # Its next change comes soon: in the same batch as the refused one, or a later one.
            self.cleanups.append((op_index + r.randint(1, 40), i))

    def prepare(self):
        """Before the stream exists: half the keys, two of them carrying the marker."""
        for n, i in enumerate(range(0, self.keys, 2)):
            poison = n in (3, 7)
            self.put(i, poison)
            self.present.add(i)
            self.initial.add(i)
            if poison:
                self.poisoned.add(i)
                self.cleanups.append((self.rng.randint(20, 200), i))

    def before_eddy(self, n):
        """After the stream is enabled, before eddy starts: updates of existing items only."""
        for k in range(n):
            self.one(-n + k, allow_inserts=False)

    def heal(self):
        """The last changes: every item still carrying the marker is changed once more."""
        for i in sorted(self.poisoned):
            self.update(i, clean=True)
            self.counts["heal"] += 1
        self.poisoned.clear()
        self.cleanups.clear()

    def run(self):
        try:
            interval = 1.0 / self.rate if self.rate > 0 else 0
            next_at = time.monotonic()
            for n in range(self.operations):
                self.one(n)
                self.done = n + 1
                next_at += interval
                wait = next_at - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                elif wait < -2:
                    next_at = time.monotonic()  # behind: do not burst to catch up
            self.heal()
        except Exception as e:  # a failure of moto or of the soak itself: reported, fails the run
            self.error = repr(e)

    def start(self):
        self.thread = threading.Thread(target=self.run, name="writer", daemon=True)
        self.thread.start()


def watch_snapshot(client, writer, stop):
    """Sets writer.snapshot_started once a snapshot segment has a checkpoint in the lease table
    (a page is acknowledged: the scan is under way), and writer.snapshot_done once every segment
    is checkpointed SHARD_END (by any process): from then on the snapshot's keys may be deleted."""
    while not stop.is_set() and not writer.snapshot_done.is_set():
        try:
            segments = [it for it in scan(client, "Leases") if it["shard_id"]["S"].startswith("segment-")]
            checkpoints = [it.get("checkpoint", {}).get("S") for it in segments]
            if any(checkpoints) and not writer.snapshot_started.is_set():
                writer.snapshot_started.set()
                say("the snapshot is under way (a segment has a checkpoint)")
            if checkpoints.count("SHARD_END") >= SEGMENTS:
                writer.snapshot_done.set()
                say("the snapshot is done (every segment SHARD_END in the lease table)")
                return
        except Exception:
            pass  # the lease table does not exist yet
        time.sleep(0.3)
