//! What can be checked of the deployment files without Docker or a cluster: the Kubernetes
//! manifests validate against the Kubernetes schemas (`kubernetes-validate` from PyPI, strict),
//! the pipeline in the ConfigMap is a valid eddy pipeline, and the Grafana dashboard and the
//! Prometheus alerts name only metrics eddy exports.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use eddy_e2e::process::eddy;
use eddy_e2e::repo_root;

fn manifests() -> Vec<PathBuf> {
    let dir = repo_root().join("deploy/kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn the_kubernetes_manifests_validate_against_the_kubernetes_schemas() {
    let files = manifests();
    assert!(files.len() >= 4, "{files:?}");
    let out = Command::new("kubernetes-validate")
        .args(["--strict", "--kubernetes-version", "1.31.0"])
        .args(&files)
        .output()
        .expect("kubernetes-validate must be on PATH: tests/setup.sh installs it (pip install kubernetes-validate)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert_eq!(text.matches(" passed for resource ").count(), files.len(), "{text}");
}

#[test]
fn the_pipeline_in_the_configmap_is_valid() {
    let text = std::fs::read_to_string(repo_root().join("deploy/kubernetes/configmap.yaml")).unwrap();
    let map: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let pipeline = map["data"]["pipeline.yaml"].as_str().expect("data.pipeline.yaml");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pipeline.yaml");
    std::fs::write(&path, pipeline).unwrap();
    let (code, out, err) = eddy(&["validate", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
}

/// Every `eddy_*` metric name eddy registers (the constants of host/src/metrics/mod.rs and of
/// the Alternator sink's node metrics).
fn exported_metrics() -> BTreeSet<String> {
    let source = ["host/src/metrics/mod.rs", "plugins/alternator/src/nodes.rs"]
        .map(|f| std::fs::read_to_string(repo_root().join(f)).unwrap())
        .join("\n");
    source
        .split('"')
        .filter(|s| s.starts_with("eddy_") && s.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .map(str::to_owned)
        .collect()
}

/// The `eddy_*` names in `text`, a histogram's `_bucket` series counted as the histogram.
fn named_metrics(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("eddy_") {
        let tail = &rest[i..];
        let end = tail.find(|c: char| !(c.is_ascii_lowercase() || c == '_')).unwrap_or(tail.len());
        let name = &tail[..end];
        names.insert(name.strip_suffix("_bucket").unwrap_or(name).to_owned());
        rest = &tail[end..];
    }
    names
}

#[test]
fn the_dashboard_and_the_alerts_name_only_metrics_eddy_exports() {
    let exported = exported_metrics();
    assert!(exported.contains("eddy_records_out_total") && exported.len() > 10, "{exported:?}");

    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo_root().join("deploy/grafana/eddy.json")).unwrap()).unwrap();
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter().map(|t| t["expr"].as_str().unwrap().to_owned()))
        .collect();
    let used = named_metrics(&exprs.join("\n"));
    let unknown: Vec<&String> = used.difference(&exported).collect();
    assert!(unknown.is_empty(), "the dashboard names metrics eddy does not export: {unknown:?}");
    for wanted in [
        "eddy_records_out_total",
        "eddy_iterator_age_seconds",
        "eddy_records_dead_lettered_total",
        "eddy_leases_held",
        "eddy_sink_write_duration_seconds",
    ] {
        assert!(used.contains(wanted), "the dashboard has no panel on {wanted}");
    }

    let text = std::fs::read_to_string(repo_root().join("deploy/prometheus/alerts.yaml")).unwrap();
    let rules: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let rules = rules["groups"][0]["rules"].as_sequence().expect("groups[0].rules");
    let mut alerted = BTreeSet::new();
    for rule in rules {
        let name = rule["alert"].as_str().expect("every rule is an alert");
        let expr = rule["expr"].as_str().unwrap_or_else(|| panic!("{name}: no expr"));
        assert!(rule["labels"]["severity"].is_string() && rule["annotations"]["summary"].is_string(), "{name}");
        let unknown: Vec<String> = named_metrics(expr).difference(&exported).cloned().collect();
        assert!(unknown.is_empty(), "alert {name} names metrics eddy does not export: {unknown:?}");
        alerted.extend(named_metrics(expr));
    }
    for wanted in
        ["eddy_iterator_age_seconds", "eddy_records_dead_lettered_total", "eddy_leases_held", "eddy_sink_errors_total"]
    {
        assert!(alerted.contains(wanted), "no alert on {wanted}");
    }
}
