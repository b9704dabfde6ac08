//! The `eddy` binary as a child process, and the example components it loads.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::repo_root;

/// A `cargo` command without the variables cargo sets for the test process itself
/// (`CARGO_MANIFEST_DIR`, `CARGO_PKG_*`, ...): some build scripts (ring's) rerun when those
/// change, which would rebuild half the tree on every test run.
fn cargo() -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let per_package = ["CARGO_MANIFEST_", "CARGO_PKG_", "CARGO_CRATE_", "CARGO_PRIMARY_", "CARGO_TARGET_TMPDIR"];
        if per_package.iter().any(|p| name.starts_with(p)) {
            command.env_remove(&*name);
        }
    }
    command
}

/// The `eddy` binary, built once per test process (a no-op when it is up to date). It builds
/// `--workspace` so that features resolve as in the test build and nothing is rebuilt.
pub fn eddy_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let status = cargo()
            .args(["build", "--quiet", "--workspace", "--bins"])
            .current_dir(repo_root())
            .status()
            .expect("cargo build");
        assert!(status.success(), "building eddy failed");
        let target =
            std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo_root().join("target"));
        target.join("debug").join("eddy")
    })
}

/// The `eddy-bench` binary (beside `eddy`, built with it).
pub fn eddy_bench_bin() -> PathBuf {
    eddy_bin().with_file_name("eddy-bench")
}

/// Runs `eddy-bench <args>` to completion; returns (exit code, stdout, stderr).
pub fn eddy_bench(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(eddy_bench_bin()).args(args).output().expect("run eddy-bench");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// The example component `name` (e.g. `only_dogs`) from `examples/plugins`.
pub fn example_component(name: &str) -> PathBuf {
    component("examples/plugins", name)
}

/// The test-only component `name` (e.g. `hostile`) from `tests/plugins`.
pub fn test_component(name: &str) -> PathBuf {
    component("tests/plugins", name)
}

/// The Python example `examples/python/<folder>` (its `app.py`), built with componentize-py
/// (installed by `tests/setup.sh`) into `target/python/<folder>.wasm`, once per process.
pub fn python_component(folder: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let dir = repo_root().join("examples/python").join(folder);
    let out = repo_root().join("target/python").join(format!("{folder}.wasm"));
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if !built.iter().any(|f| f == folder) {
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        let output = Command::new("componentize-py")
            .args(["-d", "../../../wit", "-w", "processor", "componentize", "app", "-o"])
            .arg(&out)
            .current_dir(&dir)
            .output()
            .expect("componentize-py (pip install componentize-py; tests/setup.sh does)");
        assert!(output.status.success(), "componentize-py failed: {}", String::from_utf8_lossy(&output.stderr));
        built.push(folder.to_owned());
    }
    out
}

/// The JavaScript example component in `examples/js/<folder>`, built with componentize-js (its
/// `npm run build`, into `target/js/<folder>.wasm`) once per process. `tests/setup.sh` installs
/// its npm dependencies.
pub fn js_component(folder: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let dir = repo_root().join("examples/js").join(folder);
    let out = repo_root().join("target/js").join(format!("{folder}.wasm"));
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if !built.iter().any(|f| f == folder) {
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        let output = Command::new("npm")
            .args(["run", "--silent", "build", "--", "--out"])
            .arg(&out)
            .current_dir(&dir)
            .output()
            .expect("npm (Node.js) must be on PATH; tests/setup.sh installs the example's dependencies");
        assert!(
            output.status.success(),
            "building {folder} with componentize-js failed (did tests/setup.sh run `npm install` there?): {}",
            String::from_utf8_lossy(&output.stderr)
        );
        built.push(folder.to_owned());
    }
    out
}

/// Component `name` of the guest workspace `workspace`, built for wasm32-wasip2 once per process.
fn component(workspace: &str, name: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let dir = repo_root().join(workspace);
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if !built.iter().any(|w| w == workspace) {
        let status = cargo()
            .args(["build", "--quiet", "--release", "--target", "wasm32-wasip2"])
            .current_dir(&dir)
            .status()
            .expect("cargo build of guest components");
        assert!(status.success(), "building {workspace} failed (is the wasm32-wasip2 target installed?)");
        built.push(workspace.to_owned());
    }
    let path = dir.join(format!("target/wasm32-wasip2/release/{name}.wasm"));
    assert!(path.exists(), "{} is missing", path.display());
    path
}

/// A running `eddy run`.
pub struct Eddy {
    child: Option<Child>,
    log: PathBuf,
}

impl Eddy {
    /// Starts `eddy run --config <config>`; its log goes to `<config>.log`.
    pub fn start(config: &Path) -> Self {
        Self::start_limited(config, None)
    }

    /// Starts `eddy run --config <config>` with at most `open_files` file descriptors (`ulimit
    /// -n`), when given.
    pub fn start_limited(config: &Path, open_files: Option<u32>) -> Self {
        let config = config.to_str().expect("a UTF-8 path");
        Self::spawn(&["run", "--config", config], open_files, None, &[])
    }

    /// Starts `eddy run --config <config>` with extra environment variables.
    pub fn start_with_env(config: &Path, env: &[(&str, &str)]) -> Self {
        let config = config.to_str().expect("a UTF-8 path");
        Self::spawn(&["run", "--config", config], None, None, env)
    }

    /// Starts `eddy ARGS...` (e.g. `snapshot --config FILE`); its log goes beside the file after
    /// `--config`, one log per process started.
    pub fn start_args(args: &[&str]) -> Self {
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        Self::spawn(args, None, Some(STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed)), &[])
    }

    fn spawn(args: &[&str], open_files: Option<u32>, number: Option<usize>, env: &[(&str, &str)]) -> Self {
        let config = args.iter().skip_while(|a| **a != "--config").nth(1).expect("--config FILE");
        let name = match number {
            Some(n) => format!("{}.{n}.log", std::process::id()),
            None => format!("{}.log", std::process::id()),
        };
        let log = Path::new(config).with_extension(name);
        let log_file = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        let mut command = match open_files {
            None => Command::new(eddy_bin()),
            Some(n) => {
                let mut c = Command::new("sh");
                c.args(["-c", &format!("ulimit -n {n} && exec \"$0\" \"$@\"")]).arg(eddy_bin());
                c
            }
        };
        let child = command
            .args(args)
            .envs(env.iter().copied())
            .env("EDDY_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start eddy");
        Eddy { child: Some(child), log }
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGINT and waits for the exit; returns the status and how long the exit took.
    pub fn interrupt(&mut self) -> (ExitStatus, Duration) {
        let mut child = self.child.take().expect("running");
        let started = Instant::now();
        let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return (status, started.elapsed());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("eddy did not exit within 30s of SIGINT; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGHUP (reload the processors).
    pub fn hangup(&self) {
        let child = self.child.as_ref().expect("running");
        let status = Command::new("kill").args(["-HUP", &child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// Kills the process with SIGKILL (no chance to checkpoint) and waits for it.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().expect("running");
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status;
            }
            if Instant::now() > deadline {
                panic!("eddy did not exit within {timeout:?}; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the process has exited (and with what).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().unwrap())
    }
}

impl Drop for Eddy {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs `eddy <args>` to completion; returns (exit code, stdout, stderr).
pub fn eddy(args: &[&str]) -> (i32, String, String) {
    eddy_with_env(args, &[])
}

/// Runs `eddy <args>` with extra environment variables to completion.
pub fn eddy_with_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(eddy_bin()).args(args).envs(env.iter().copied()).output().expect("run eddy");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}
