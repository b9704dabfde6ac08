//! `eddy-bench`: eddy's benchmarks, outside the product. `e2e` runs the `eddy` binary as users do
//! against a canned endpoint (`endpoint`, this program in a child process) and measures records
//! per CPU-second of the eddy process; the others measure eddy's own code on one core (decoding,
//! filtering, the pipeline, the CrateDB translation). Build with `--release`.

#![deny(missing_docs)]

mod components;
mod e2e;
mod endpoint;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// eddy's benchmarks: end to end as users run eddy (`e2e`), and its components on one core. Build
/// with --release; debug builds are many times slower.
#[derive(Parser)]
#[command(name = "eddy-bench", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Rows/s translated to CrateDB rows and serialized as bulk_args (no network), on one core:
    /// once with images as text, as the stream sources give them, and once with images decoded.
    Cratedb {
        /// The records (JSONL); e.g. the commons-codec vectors' records, or `eddy bench sample`.
        #[arg(long)]
        input: PathBuf,
        /// How many times to translate the whole input.
        #[arg(long, default_value_t = 10)]
        rounds: usize,
    },
    /// Print N typical 1 KB PetTracker change records as JSONL (benchmark input).
    Sample {
        /// How many.
        #[arg(long, default_value_t = 10_000)]
        records: usize,
    },
    /// Records/s through one route into the null sink: no processor, then each example component
    /// (passthrough, only-dogs, mask-email), at several batch sizes, on one worker. Prints two
    /// tables: the pipeline alone (records decoded up front), and records decoded from their
    /// Lambda JSON lines in each batch, as `eddy run` with a file source does.
    Pipeline {
        /// Where the example components are (`cargo build --release --target wasm32-wasip2` in
        /// examples/plugins puts them there).
        #[arg(long, default_value = "examples/plugins/target/wasm32-wasip2/release")]
        plugins: PathBuf,
        /// Batch sizes (records per processor call).
        #[arg(long, value_delimiter = ',', default_value = "1,100,1000")]
        batch_sizes: Vec<usize>,
        /// Seconds per measurement.
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
    },
    /// End to end as users run eddy: starts a canned DynamoDB Streams + Kinesis + DynamoDB +
    /// CrateDB endpoint on loopback (in a child process, answering at once), runs `eddy run` on it until
    /// the stream is drained, and prints records/s and records per CPU-second of the eddy process
    /// for each sink and shard count, replication lag p50/p99 at a fixed offered rate, and peak
    /// memory with many shards.
    E2e {
        /// Records per throughput case (over all shards). A million is about what catching up after
        /// an hour's outage of a table written 300 times a second reads; far fewer, and the
        /// one-time cost of faulting in the memory of the pages in flight (~170 MiB at 16 shards)
        /// weighs on the figure.
        #[arg(long, default_value_t = 1_000_000)]
        records: u64,
        /// The kinesis case: records (over all shards); default: --records, at most 200,000.
        /// Kinesis allows 5 GetRecords calls a second per shard, so one shard reads about 5,000
        /// records a second: 200,000 take 40 s.
        #[arg(long)]
        kinesis_records: Option<u64>,
        /// Shard counts of the throughput cases.
        #[arg(long, value_delimiter = ',', default_value = "1,16")]
        shards: Vec<usize>,
        /// Cases to run: null, alternator, cratedb, only-dogs, kinesis (Kinesis source → null),
        /// snapshot and snapshot-alternator (`eddy snapshot` of the table behind the stream, one
        /// Scan segment per shard, into null or Alternator), the forwarding sinks sqs, eventbridge,
        /// kinesis-out (the kinesis sink) and http (the default `format: record`, the endpoint acknowledging
        /// every entry), lag, memory, parallel (one shard into
        /// an Alternator endpoint answering each BatchWriteItem after --write-latency-ms, at each
        /// --factors parallelization factor).
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "null,alternator,cratedb,only-dogs,kinesis,snapshot,snapshot-alternator,sqs,eventbridge,kinesis-out,http,lag,memory,parallel"
        )]
        cases: Vec<String>,
        /// The parallel case: the parallelization factors to compare.
        #[arg(long, value_delimiter = ',', default_value = "1,4")]
        factors: Vec<u32>,
        /// The parallel case: how long the endpoint takes to answer a BatchWriteItem.
        #[arg(long, default_value_t = 50)]
        write_latency_ms: u64,
        /// The parallel case: records in the shard.
        #[arg(long, default_value_t = 20_000)]
        parallel_records: u64,
        /// Where only_dogs.wasm is (`cargo build --release --target wasm32-wasip2` in
        /// examples/plugins puts it there).
        #[arg(long, default_value = "examples/plugins/target/wasm32-wasip2/release")]
        plugins: PathBuf,
        /// The eddy binary to measure; default: `eddy` beside this program (`cargo build --release`
        /// builds both into target/release).
        #[arg(long)]
        eddy: Option<PathBuf>,
        /// The lag case: records per second offered over 16 shards.
        #[arg(long, default_value_t = 10_000.0)]
        lag_rate: f64,
        /// The lag case: how many seconds records are offered.
        #[arg(long, default_value_t = 20.0)]
        lag_seconds: f64,
        /// The memory case: how many shards.
        #[arg(long, default_value_t = 64)]
        memory_shards: usize,
    },
    /// The canned endpoint `e2e` starts (prints `listening on ADDRESS`, serves until killed): a
    /// DynamoDB Streams, Kinesis, DynamoDB and CrateDB stand-in on loopback.
    Endpoint {
        #[arg(long)]
        shards: usize,
        #[arg(long)]
        records_per_shard: u64,
        /// Records per second over all shards; default: all there at once.
        #[arg(long)]
        rate: Option<f64>,
        /// Milliseconds BatchWriteItem and /_sql take to answer.
        #[arg(long, default_value_t = 0)]
        write_latency_ms: u64,
    },
    /// Records/s decoded from a GetRecords answer (1,000 records of ~1.9 KB), as the DynamoDB
    /// Streams source decodes every page, on one core.
    Decode {
        /// How many seconds to decode for.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
    },
    /// Matches/s of a five-pattern filter on typical DynamoDB stream records, on one core.
    Filter {
        /// How many records to match.
        #[arg(long, default_value_t = 2_000_000)]
        records: usize,
    },
}

fn usage(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Cratedb { input, rounds } => {
            let text = match std::fs::read_to_string(&input) {
                Ok(t) => t,
                Err(e) => return usage(&format!("{}: {e}", input.display())),
            };
            let records: Result<Vec<eddy_record::ChangeRecord>, _> =
                text.lines().filter(|l| !l.trim().is_empty()).map(serde_json::from_str).collect();
            match records {
                Ok(records) => {
                    println!("{}", components::cratedb(&records, rounds));
                    ExitCode::SUCCESS
                }
                Err(e) => usage(&format!("{}: not change records: {e}", input.display())),
            }
        }
        Command::Sample { records } => {
            let mut out = std::io::stdout().lock();
            for i in 0..records {
                let line = serde_json::to_string(&components::sample_record(i)).expect("records serialize");
                if std::io::Write::write_all(&mut out, format!("{line}\n").as_bytes()).is_err() {
                    return ExitCode::FAILURE;
                }
            }
            ExitCode::SUCCESS
        }
        Command::E2e {
            records,
            kinesis_records,
            shards,
            cases,
            plugins,
            eddy,
            lag_rate,
            lag_seconds,
            memory_shards,
            factors,
            write_latency_ms,
            parallel_records,
        } => {
            // `eddy` beside this program: cargo builds both into one target folder.
            let beside = || std::env::current_exe().ok().and_then(|me| Some(me.parent()?.join("eddy")));
            let Some(eddy) = eddy.or_else(beside) else { return usage("cannot find the eddy binary: pass --eddy") };
            let options = e2e::Options {
                records,
                kinesis_records: kinesis_records.unwrap_or(records.min(200_000)),
                shards,
                cases,
                plugins,
                lag_rate,
                lag_seconds,
                memory_shards,
                factors,
                write_latency: std::time::Duration::from_millis(write_latency_ms),
                parallel_records,
                eddy,
            };
            match e2e::run(&options) {
                Ok(table) => {
                    println!("{table}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Endpoint { shards, records_per_shard, rate, write_latency_ms } => {
            let write_latency = std::time::Duration::from_millis(write_latency_ms);
            let spec = endpoint::Spec { shards, records_per_shard, rate, write_latency };
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(r) => r,
                Err(e) => return usage(&format!("cannot start a runtime: {e}")),
            };
            runtime.block_on(async {
                let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                    Ok(l) => l,
                    Err(e) => return usage(&format!("cannot listen on loopback: {e}")),
                };
                match listener.local_addr() {
                    Ok(address) => println!("listening on {address}"),
                    Err(e) => return usage(&format!("{e}")),
                }
                endpoint::serve(spec, listener).await;
                ExitCode::SUCCESS
            })
        }
        Command::Decode { seconds } => {
            println!("{}", components::decode(seconds));
            ExitCode::SUCCESS
        }
        Command::Filter { records } => {
            println!("{}", components::filter(records));
            ExitCode::SUCCESS
        }
        Command::Pipeline { plugins, batch_sizes, seconds } => {
            let case = |name: &str, file: &str, config: &str| components::Case {
                name: name.to_owned(),
                processor: Some((plugins.join(file), config.to_owned())),
            };
            let cases = [
                components::Case { name: "no processor".into(), processor: None },
                case("passthrough", "passthrough.wasm", "{}"),
                case("only-dogs", "only_dogs.wasm", r#"{"species": "dog"}"#),
                case("mask-email", "mask_email.wasm", r#"{"attributes": ["email"]}"#),
            ];
            let tables = components::pipeline(&cases, &batch_sizes, seconds, false)
                .and_then(|alone| Ok((alone, components::pipeline(&cases, &batch_sizes, seconds, true)?)));
            match tables {
                Ok((alone, decoded)) => {
                    println!("{alone}\n{decoded}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
