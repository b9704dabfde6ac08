//! `eddy-bench e2e`: what a record costs end to end, as a user runs eddy.
//!
//! For each case the benchmark starts the canned endpoint ([`crate::endpoint`]) in a child
//! process, writes a pipeline file, runs `eddy run` on it in another child process until the
//! stream is drained, and takes that process's CPU time and peak resident memory from the kernel
//! (`wait4`). Each case is run twice: once with empty shards, to measure start-up (loading the
//! config, compiling components, connecting), and once with the records; the table gives
//! records per CPU-second of the second run minus the first. The endpoint checks that every
//! record was served, and for the Alternator and CrateDB cases that every record reached it.
//!
//! The `parallel` case writes one shard into an Alternator endpoint that answers each
//! BatchWriteItem only after `write_latency` (a slow sink), once per parallelization factor, and
//! compares records/s (wall time: the sink's latency, not CPU, is the limit there).
//!
//! The `snapshot` and `snapshot-alternator` cases run `eddy snapshot` on the table behind the
//! stream (DescribeTable, then a parallel Scan of one segment per shard, the same PetTracker
//! items) into the null sink or Alternator: what a snapshot item costs beside a stream record.
//!
//! The `kinesis` case reads the same records from the endpoint's Kinesis stream into the null
//! sink. A Kinesis stream never ends, so the benchmark stops `eddy run` with SIGINT once every
//! record was served and GetRecords calls have stopped (every shard read to its end).

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::endpoint::{Stats, KINESIS_ARN, STREAM_ARN};

/// What the benchmark runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Records per throughput case (over all shards).
    pub records: u64,
    /// Records of the `kinesis` case (over all shards): one shard reads about 5,000 a second.
    pub kinesis_records: u64,
    /// Shard counts of the throughput cases.
    pub shards: Vec<usize>,
    /// Which cases: `null`, `alternator`, `cratedb`, `only-dogs`, `kinesis`, `snapshot`,
    /// `snapshot-alternator`, `lag`, `memory`, `parallel`.
    pub cases: Vec<String>,
    /// Where `only_dogs.wasm` is.
    pub plugins: PathBuf,
    /// The lag case: records per second offered over 16 shards.
    pub lag_rate: f64,
    /// The lag case: how long records are offered.
    pub lag_seconds: f64,
    /// The memory case: shards (each with 2,000 records).
    pub memory_shards: usize,
    /// The parallel case: the parallelization factors compared.
    pub factors: Vec<u32>,
    /// The parallel case: how long the endpoint takes to answer a BatchWriteItem.
    pub write_latency: Duration,
    /// The parallel case: records in its one shard.
    pub parallel_records: u64,
    /// The `eddy` binary to measure.
    pub eddy: PathBuf,
}

/// One finished `eddy run`.
struct Measured {
    cpu: Duration,
    wall: Duration,
    peak_rss_kib: u64,
    stats: Stats,
}

/// Runs the cases and returns the tables (Markdown).
///
/// # Errors
/// When the endpoint or `eddy run` cannot be started, `eddy run` fails, or a record went missing.
pub fn run(options: &Options) -> anyhow::Result<String> {
    let exe = options.eddy.clone();
    anyhow::ensure!(
        exe.exists(),
        "{} does not exist: build eddy first (cargo build --release -p eddy), or pass --eddy",
        exe.display()
    );
    let dir = tempfile::Builder::new().prefix("eddy-bench-e2e").tempdir()?;
    let wants = |case: &str| options.cases.iter().any(|c| c == case);
    let mut out = String::new();
    let record_bytes = crate::endpoint::record_size();
    out.push_str(&format!(
        "End to end: canned DynamoDB Streams endpoint on loopback → `eddy run` → sink; {} records per case ({} \
         for Kinesis), ~{record_bytes}-byte records (GetRecords JSON), 1,000 per page. CPU: the eddy process only, \
         start-up subtracted.\n\n",
        options.records, options.kinesis_records
    ));
    out.push_str("| case | shards | records/s | records per eddy CPU-second | µs CPU a record | start-up CPU-s | peak RSS MiB |\n");
    out.push_str("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    let dogs = options.plugins.join("only_dogs.wasm");
    let dogs = std::path::absolute(&dogs).unwrap_or(dogs);
    for sink in [
        "null",
        "alternator",
        "cratedb",
        "only-dogs",
        "kinesis",
        "snapshot",
        "snapshot-alternator",
        "sqs",
        "eventbridge",
        "kinesis-out",
        "http",
    ] {
        if !wants(sink) {
            continue;
        }
        if sink == "only-dogs" && !dogs.exists() {
            out.push_str(&format!("| only-dogs → null | – | skipped: {} not built | | | | |\n", dogs.display()));
            continue;
        }
        for &shards in &options.shards {
            let records = if sink == "kinesis" { options.kinesis_records } else { options.records };
            let per_shard = records.div_ceil(shards as u64);
            let case = Case {
                sink,
                shards,
                exe: &exe,
                dir: dir.path(),
                dogs: &dogs,
                factor: 1,
                write_latency: Duration::ZERO,
            };
            let idle = case.measure(0, None)?;
            let busy = case.measure(per_shard, None)?;
            let records = per_shard * shards as u64;
            let cpu = busy.cpu.saturating_sub(idle.cpu).as_secs_f64().max(1e-9);
            let name = match sink {
                "only-dogs" => "only-dogs → null",
                "kinesis" => "Kinesis → null",
                "snapshot" => "snapshot → null",
                "snapshot-alternator" => "snapshot → alternator",
                "kinesis-out" => "kinesis (sink)",
                other => other,
            };
            out.push_str(&format!(
                "| {name} | {shards} | {:.0} | {:.0} | {:.1} | {:.2} | {:.0} |\n",
                records as f64 / busy.wall.as_secs_f64(),
                records as f64 / cpu,
                cpu * 1e6 / records as f64,
                idle.cpu.as_secs_f64(),
                busy.peak_rss_kib as f64 / 1024.0,
            ));
        }
    }
    if wants("lag") {
        let shards = 16;
        let per_shard = (options.lag_rate * options.lag_seconds / shards as f64).ceil() as u64;
        let case = Case {
            sink: "alternator",
            shards,
            exe: &exe,
            dir: dir.path(),
            dogs: &dogs,
            factor: 1,
            write_latency: Duration::ZERO,
        };
        let m = case.measure(per_shard, Some(options.lag_rate))?;
        out.push_str(&format!(
            "\nReplication lag (write time in the item → BatchWriteItem arrival), {:.0} records/s offered over {shards} \
             shards for {:.0} s into Alternator, default settings: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms \
             ({} samples); eddy used {:.1}% of one core.\n",
            options.lag_rate,
            options.lag_seconds,
            m.stats.lag_p50_ms,
            m.stats.lag_p99_ms,
            m.stats.lag_max_ms,
            m.stats.lag_samples,
            100.0 * m.cpu.as_secs_f64() / m.wall.as_secs_f64(),
        ));
    }
    if wants("memory") {
        let shards = options.memory_shards;
        let case = Case {
            sink: "null",
            shards,
            exe: &exe,
            dir: dir.path(),
            dogs: &dogs,
            factor: 1,
            write_latency: Duration::ZERO,
        };
        let m = case.measure(2000, None)?;
        out.push_str(&format!(
            "\nPeak resident memory with {shards} shards (2,000 records each, null sink, default settings): {:.0} MiB.\n",
            m.peak_rss_kib as f64 / 1024.0
        ));
    }
    if wants("parallel") {
        out.push_str(&format!(
            "\nA slow sink: one shard, {} records, into an Alternator endpoint that answers each BatchWriteItem \
             after {} ms (default sink concurrency 8):\n\n| parallelization_factor | records/s | × factor 1 |\n| ---: | ---: | ---: |\n",
            options.parallel_records,
            options.write_latency.as_millis()
        ));
        let mut base = None;
        for &factor in &options.factors {
            let case = Case {
                sink: "alternator",
                shards: 1,
                exe: &exe,
                dir: dir.path(),
                dogs: &dogs,
                factor,
                write_latency: options.write_latency,
            };
            let m = case.measure(options.parallel_records, None)?;
            let rate = options.parallel_records as f64 / m.wall.as_secs_f64();
            let base = *base.get_or_insert(rate);
            out.push_str(&format!("| {factor} | {rate:.0} | {:.1} |\n", rate / base));
        }
    }
    Ok(out)
}

/// Every record was served, and a sink that reports what it received got every one.
fn check(sink: &str, records: u64, stats: &Stats) -> anyhow::Result<()> {
    if stats.records_served != records {
        bail!("{sink}: the endpoint served {} records, not {records}", stats.records_served);
    }
    let received = match sink {
        "alternator" | "snapshot-alternator" => stats.items_written,
        "cratedb" => stats.rows_written,
        "sqs" | "eventbridge" | "kinesis-out" | "http" => stats.forwarded,
        _ => return Ok(()),
    };
    if received != records {
        bail!("{sink}: the sink received {received} of {records} records");
    }
    Ok(())
}

struct Case<'a> {
    sink: &'a str,
    shards: usize,
    /// The `eddy` binary.
    exe: &'a Path,
    dir: &'a Path,
    dogs: &'a Path,
    /// `source.parallelization_factor`.
    factor: u32,
    /// How long the endpoint takes to answer a write.
    write_latency: Duration,
}

impl Case<'_> {
    fn measure(&self, per_shard: u64, rate: Option<f64>) -> anyhow::Result<Measured> {
        let endpoint = Endpoint::start(self.shards, per_shard, rate, self.write_latency)?;
        // A fresh folder per run: a run must not find another's checkpoints.
        static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let work = self.dir.join(format!("{run:02}-{}-{}-{per_shard}", self.sink, self.shards));
        std::fs::create_dir_all(&work)?;
        let config = work.join("pipeline.yaml");
        std::fs::write(&config, self.pipeline(&endpoint.url))?;
        let log = std::fs::File::create(work.join("eddy.log"))?;
        let started = Instant::now();
        let job = if self.sink.starts_with("snapshot") { "snapshot" } else { "run" };
        let child = Command::new(self.exe)
            .args([job, "--config"])
            .arg(&config)
            .env("AWS_ACCESS_KEY_ID", "bench")
            .env("AWS_SECRET_ACCESS_KEY", "bench")
            .env("AWS_REGION", "us-east-1")
            .env_remove("AWS_PROFILE")
            .env("CRATEDB_USERNAME", "crate")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot start eddy run")?;
        if self.sink == "kinesis" {
            stop_when_drained(&child, &endpoint, per_shard * self.shards as u64, self.shards)?;
        }
        let (status, usage) = wait(child, Duration::from_secs(900))?;
        let wall = started.elapsed();
        let log = work.join("eddy.log");
        let log_tail = || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(20).collect();
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        };
        if !status.success() {
            bail!("eddy run ({} sink, {} shards) exited with {status}:\n{}", self.sink, self.shards, log_tail());
        }
        let stats = endpoint.stats()?;
        if let Err(e) = check(self.sink, per_shard * self.shards as u64, &stats) {
            // Keep the pipeline, its state and its log for a look.
            let tail = log_tail();
            let kept = std::env::temp_dir().join(format!("eddy-bench-failed-{}", std::process::id()));
            let _ = std::fs::rename(&work, &kept);
            bail!("{e} ({stats:?}; pipeline, state and log kept in {}):\n{tail}", kept.display());
        }
        Ok(Measured { cpu: usage.cpu, wall, peak_rss_kib: usage.peak_rss_kib, stats })
    }

    fn pipeline(&self, url: &str) -> String {
        let (processors, sink) = match self.sink {
            "alternator" | "snapshot-alternator" => (
                String::new(),
                format!("out: {{type: alternator, endpoint: \"{url}\", region: us-east-1, table: PetReplica}}"),
            ),
            "cratedb" => (String::new(), format!("out: {{type: cratedb, url: \"{url}\", table: doc.pets}}")),
            "sqs" => (String::new(), format!("out: {{type: sqs, queue: bench, endpoint: \"{url}\"}}")),
            "eventbridge" => (String::new(), format!("out: {{type: eventbridge, source: bench, endpoint: \"{url}\"}}")),
            "kinesis-out" => (String::new(), format!("out: {{type: kinesis, stream_name: out, endpoint: \"{url}\"}}")),
            "http" => (String::new(), format!("out: {{type: http, url: \"{url}/hook\"}}")),
            "only-dogs" => (
                format!(
                    "processors:\n  only-dogs:\n    wasm: \"{}\"\n    config: {{species: dog}}\n",
                    self.dogs.display()
                ),
                "out: {type: \"null\"}".to_owned(),
            ),
            _ => (String::new(), "out: {type: \"null\"}".to_owned()),
        };
        let source = if self.sink == "kinesis" {
            format!("type: kinesis\n  stream_arn: \"{KINESIS_ARN}\"")
        } else if self.sink.starts_with("snapshot") {
            // One Scan segment per shard of the endpoint's table.
            format!("type: dynamodb\n  table: PetTracker\n  snapshot: {{mode: first_run, segments: {}}}", self.shards)
        } else {
            format!("type: dynamodb\n  stream_arn: \"{STREAM_ARN}\"")
        };
        let route_processors = if processors.is_empty() { "" } else { ", processors: [only-dogs]" };
        format!(
            "source:\n  {source}\n  endpoint: \"{url}\"\n  region: us-east-1\n  \
             start: trim_horizon\n  parallelization_factor: {factor}\ncheckpoints: {{type: local, path: state}}\n{processors}sinks:\n  {sink}\n\
             routes:\n  - {{name: all, sinks: [out]{route_processors}}}\ndead_letter: {{type: file, path: dead-letter.jsonl}}\n",
            factor = self.factor
        )
    }
}

/// The canned endpoint, in a child process that is killed when this is dropped.
struct Endpoint {
    child: Child,
    url: String,
    address: String,
}

impl Endpoint {
    /// Starts `eddy-bench endpoint` (this program) in a child process.
    fn start(shards: usize, per_shard: u64, rate: Option<f64>, latency: Duration) -> anyhow::Result<Self> {
        let me = std::env::current_exe().context("cannot find the eddy-bench executable")?;
        let mut command = Command::new(me);
        command.args(["endpoint", "--shards", &shards.to_string(), "--records-per-shard"]);
        command.arg(per_shard.to_string());
        command.args(["--write-latency-ms", &latency.as_millis().to_string()]);
        if let Some(rate) = rate {
            command.args(["--rate", &rate.to_string()]);
        }
        let mut child =
            command.stdout(Stdio::piped()).stdin(Stdio::null()).spawn().context("cannot start the endpoint")?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
        let address = line.trim().rsplit(' ').next().unwrap_or_default().to_owned();
        if address.is_empty() {
            let _ = child.kill();
            bail!("the bench endpoint did not say where it listens");
        }
        Ok(Self { child, url: format!("http://{address}"), address })
    }

    fn stats(&self) -> anyhow::Result<Stats> {
        let mut stream = std::net::TcpStream::connect(&self.address)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.write_all(b"GET /stats HTTP/1.0\r\nHost: bench\r\n\r\n")?;
        let mut text = String::new();
        stream.read_to_string(&mut text)?;
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
        serde_json::from_str(body).with_context(|| format!("bad /stats answer: {text}"))
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends SIGINT to `child` once the endpoint served `records` and GetRecords calls have stopped
/// for half a second (every one of `shards` shards was read to its end): a Kinesis stream never
/// ends, so `eddy run` would not exit on its own.
fn stop_when_drained(child: &Child, endpoint: &Endpoint, records: u64, shards: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(900);
    let mut last_calls = u64::MAX;
    let mut quiet = 0;
    while quiet < 5 {
        if Instant::now() > deadline {
            bail!("the Kinesis records were not all read within 15 minutes");
        }
        std::thread::sleep(Duration::from_millis(100));
        let stats = endpoint.stats()?;
        let drained = stats.records_served == records && stats.get_records_calls >= shards as u64;
        quiet = if drained && stats.get_records_calls == last_calls { quiet + 1 } else { 0 };
        last_calls = stats.get_records_calls;
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    Ok(())
}

/// What the kernel counted for one child process.
struct Usage {
    cpu: Duration,
    peak_rss_kib: u64,
}

/// Waits for `child` with `wait4`, which also returns its resource usage; kills it after
/// `limit`.
fn wait(child: Child, limit: Duration) -> anyhow::Result<(std::process::ExitStatus, Usage)> {
    use std::os::unix::process::ExitStatusExt as _;
    let pid = child.id() as libc::pid_t;
    let deadline = Instant::now() + limit;
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: `usage` is a plain C struct the kernel fills; `pid` is our own child, not yet
        // reaped (std's `Child` is never waited on here).
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let reaped = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if reaped == pid {
            let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, (t.tv_usec as u32) * 1000);
            let usage =
                Usage { cpu: time(usage.ru_utime) + time(usage.ru_stime), peak_rss_kib: usage.ru_maxrss as u64 };
            return Ok((std::process::ExitStatus::from_raw(status), usage));
        }
        if reaped < 0 {
            bail!("wait4: {}", std::io::Error::last_os_error());
        }
        if Instant::now() > deadline {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            bail!("eddy run did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
