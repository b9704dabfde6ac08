//! `eddy plugin new`: each language's project builds as written, with the commands its README
//! gives, and `eddy plugin test` on its sample records keeps the dogs (including a dog's removal)
//! and drops the cat, and refuses a config key it does not know.

use std::path::Path;
use std::process::Command;

use eddy_e2e::process::eddy;
use eddy_e2e::repo_root;

/// Writes project `my-filter` in `lang` under a fresh folder and returns the folder.
fn generate(lang: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("my-filter");
    let (code, out, err) = eddy(&["plugin", "new", "my-filter", "--lang", lang, "--dir", project.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("README.md"), "{out}");
    let readme = std::fs::read_to_string(project.join("README.md")).unwrap();
    assert!(readme.contains("eddy plugin test --wasm"), "{readme}");
    dir
}

fn run(command: &mut Command) {
    let output = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `eddy plugin test` with the README's config on the project's sample records.
fn assert_keeps_the_dogs(project: &Path, wasm: &Path) {
    let (code, out, err) = eddy(&[
        "plugin",
        "test",
        "--wasm",
        wasm.to_str().unwrap(),
        "--config",
        r#"{"attribute": "species", "equals": "dog"}"#,
        "--input",
        project.join("sample.jsonl").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let verdicts: Vec<String> = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["verdict"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(verdicts, ["pass", "drop", "pass"], "{out}");
    // A mistyped key is refused at load, not ignored (it would keep the dogs).
    let (code, out, err) = eddy(&[
        "plugin",
        "test",
        "--wasm",
        wasm.to_str().unwrap(),
        "--config",
        r#"{"species": "cat"}"#,
        "--input",
        project.join("sample.jsonl").to_str().unwrap(),
    ]);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("unknown config key `species`"), "{err}");
}

#[test]
fn a_new_rust_processor_builds_and_keeps_the_dogs() {
    let dir = generate("rust");
    let project = dir.path().join("my-filter");
    // A shared target folder, so only the project itself compiles on later runs.
    let target = repo_root().join("target/plugin-new");
    run(Command::new("cargo")
        .args(["build", "--quiet", "--release", "--target", "wasm32-wasip2"])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(&project));
    assert_keeps_the_dogs(&project, &target.join("wasm32-wasip2/release/my_filter.wasm"));
}

#[test]
fn a_new_python_processor_builds_and_keeps_the_dogs() {
    let dir = generate("python");
    let project = dir.path().join("my-filter");
    run(Command::new("componentize-py")
        .args(["-d", "wit", "-w", "processor", "componentize", "app", "-o", "my_filter.wasm"])
        .current_dir(&project));
    assert_keeps_the_dogs(&project, &project.join("my_filter.wasm"));
}

#[test]
fn a_new_javascript_processor_builds_and_keeps_the_dogs() {
    let dir = generate("js");
    let project = dir.path().join("my-filter");
    run(Command::new("npm").args(["install", "--no-audit", "--no-fund", "--silent"]).current_dir(&project));
    run(Command::new("npm").args(["run", "--silent", "build"]).current_dir(&project));
    assert_keeps_the_dogs(&project, &project.join("my_filter.wasm"));
}
