//! `eddy-bench e2e` as a user runs it (small, on the debug build): every case completes, and the
//! benchmark's own accounting holds (every record served, and every record received by the
//! Alternator and CrateDB endpoints), or it exits non-zero.

use eddy_e2e::process::{eddy_bench, example_component};

#[test]
fn every_case_runs_end_to_end_and_accounts_for_every_record() {
    let plugins = example_component("only_dogs").parent().unwrap().to_string_lossy().into_owned();
    let (code, out, err) = eddy_bench(&[
        "e2e",
        "--records",
        "3000",
        "--shards",
        "1,3",
        "--lag-rate",
        "600",
        "--lag-seconds",
        "3",
        "--memory-shards",
        "4",
        "--plugins",
        &plugins,
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    for case in [
        "| null | 1 |",
        "| null | 3 |",
        "| alternator | 3 |",
        "| cratedb | 1 |",
        "| only-dogs → null | 3 |",
        "| Kinesis → null | 3 |",
        "| sqs | 3 |",
        "| eventbridge | 1 |",
        "| kinesis (sink) | 3 |",
        "| http | 3 |",
    ] {
        let row = out.lines().find(|l| l.starts_with(case)).unwrap_or_else(|| panic!("no row {case}:\n{out}"));
        let per_cpu_second: f64 = row.split('|').nth(4).unwrap().trim().parse().unwrap();
        assert!(per_cpu_second > 0.0, "{row}");
    }
    let lag = out.lines().find(|l| l.starts_with("Replication lag")).unwrap_or_else(|| panic!("{out}"));
    assert!(lag.contains("p99") && !lag.contains("(0 samples)"), "{lag}");
    assert!(out.contains("Peak resident memory with 4 shards"), "{out}");
}
