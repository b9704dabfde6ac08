//! The chaos soak (`tests/soak/soak.py`) at its small size (`--small`, 1.5-2 minutes on 2 cores
//! with a debug build): moto behind fault proxies, three eddy processes on a lease table,
//! SIGKILLs, 10 % faults on the stream, the sink and the lease table, a shard split, a 30 s sink
//! outage and a snapshot. It passes when the replica equals the source and every record read is
//! in a sink's log or the dead letter (see `tests/soak/README.md`). The script prints its summary,
//! which is shown here; on a failure it keeps its folder (logs, configs, sink logs) and names it.

use std::process::Command;

use eddy_e2e::process::eddy_bin;
use eddy_e2e::repo_root;

#[test]
fn the_small_chaos_soak_converges_and_accounts_for_every_record() {
    let script = repo_root().join("tests/soak/soak.py");
    let mut command = Command::new("python3");
    command.arg(&script).arg("--small").arg("--eddy").arg(eddy_bin());
    // A failing seed can be replayed: SOAK_SEED=123 cargo nextest run -E 'test(/^soak::/)'.
    if let Ok(seed) = std::env::var("SOAK_SEED") {
        command.args(["--seed", &seed]);
    }
    let output = command.output().expect("python3 must be on PATH (with boto3 and moto[server]: tests/setup.sh)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{stdout}{stderr}");
    assert!(output.status.success(), "the soak failed ({}); its output is above", output.status);
    assert!(stdout.contains("PASSED: every check"), "the soak exited 0 without its verdict");
}
