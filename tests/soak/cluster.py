"""The chaos soak's processes: moto and the fault proxies (Service, Proxy), the eddy processes
(Eddy), their configs (configure) and the tables (create_tables)."""
import json
import os
import signal
import subprocess
import sys
import time

from common import FAKES, REGION, REPO, SEGMENTS, free_port, http, parse_metrics, say, tail, wait_for


def die_with_parent():
    """In a child, before exec: SIGKILL it when the soak dies, however it dies (Linux)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class Service:
    """A child process (moto, a proxy), stopped at the end."""

    def __init__(self, name, argv, log):
        self.name = name
        self.log = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, preexec_fn=die_with_parent
            )

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Proxy(Service):
    """tests/fakes/faults.py in front of moto."""

    def __init__(self, name, upstream, args, folder):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [sys.executable, str(FAKES / "faults.py"), "--port", str(self.port), "--upstream", upstream, *args]
        super().__init__(name, argv, folder / f"proxy-{name}.log")
        wait_for(f"the {name} proxy", lambda: self.faults() is not None, 20)

    def faults(self):
        return json.loads(http("GET", f"{self.url}/_faults"))

    def outage(self, seconds, targets):
        return json.loads(http("POST", f"{self.url}/_faults/outage", {"seconds": seconds, "targets": targets}))


class Eddy:
    """One eddy process slot: started, SIGKILLed and restarted on the same config."""

    def __init__(self, n, binary, config, metrics_port, folder):
        self.n = n
        self.binary = binary
        self.config = config
        self.metrics = f"http://127.0.0.1:{metrics_port}"
        self.log = folder / f"eddy-{n}.log"
        self.proc = None
        self.starts = 0
        self.restart_at = None  # when a killed process comes back (time.monotonic())
        self.exits = []  # unexpected exits: (code, last log lines)

    def start(self):
        with open(self.log, "ab") as out:
            out.write(f"\n===== soak: start {self.starts + 1} of process {self.n} =====\n".encode())
            out.flush()
            env = dict(os.environ, EDDY_LOG=os.environ.get("EDDY_LOG", "info"))
            self.proc = subprocess.Popen(
                [str(self.binary), "run", "--config", str(self.config)],
                stdout=subprocess.DEVNULL,
                stderr=out,
                env=env,
                cwd=self.config.parent,
                preexec_fn=die_with_parent,
            )
        self.starts += 1
        self.restart_at = None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self, restart_in):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None
        self.restart_at = time.monotonic() + restart_in

    def check_exit(self):
        """Notes a process that exited by itself (an error eddy gave up on); it is restarted."""
        if self.proc is not None and self.proc.poll() is not None:
            self.exits.append((self.proc.returncode, tail(self.log, 8)))
            say(f"process {self.n} exited by itself with {self.proc.returncode}; restarting it")
            self.proc = None
            self.restart_at = time.monotonic() + 1

    def scrape(self):
        try:
            return parse_metrics(http("GET", f"{self.metrics}/metrics", timeout=5))
        except Exception as e:
            return {"error": str(e)}

    def terminate(self, timeout=30):
        """SIGTERM; returns the exit code (None if it had to be killed)."""
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None
        finally:
            self.proc = None


def configure(folder, n, proxies, metrics_port, named=True):
    text = f"""# eddy soak, process {n} (written by tests/soak/soak.py)
{"name: soak" if named else "# name: soak  (left out: this eddy binary does not know the key)"}
source:
  type: dynamodb
  table: Pets
  region: {REGION}
  endpoint: "{proxies['source'].url}"
  poll_interval: 100ms
  shard_discovery_interval: 2s
  max_records_per_poll: 100
  # A read budget that makes the scan last a few seconds (pages of 6 items), so that a kill lands
  # in it and another process resumes the killed one's segments after their last page.
  snapshot: {{mode: first_run, segments: {SEGMENTS}, max_items_per_second: 25}}
checkpoints:
  type: dynamodb
  table: Leases
  endpoint: "{proxies['leases'].url}"
  region: {REGION}
  lease_duration: 2s
sinks:
  replica: {{type: alternator, endpoint: "{proxies['sink'].url}", region: {REGION}, table: Replica}}
  log: {{type: file, path: log-{n}.jsonl}}
routes:
  - name: replicate
    sinks: [replica, log]
dead_letter: {{type: file, path: dead-letter-{n}.jsonl}}
metrics: {{listen: "127.0.0.1:{metrics_port}"}}
"""
    path = folder / f"eddy-{n}.yaml"
    path.write_text(text)
    return path


def create_tables(db):
    schema = {
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }
    db.create_table(TableName="Pets", **schema)
    db.create_table(TableName="Replica", **schema)
