//! `processors.NAME`: a WebAssembly component, its `config:` handed to its `init`, and the limits
//! of one instance and one call, each default and minimum declared once.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::spec::{units, Problem};

/// `processors.NAME`: a WebAssembly component.
#[derive(Debug, Clone)]
pub struct ProcessorConfig {
    /// The component file (`.wasm`).
    pub wasm: PathBuf,
    /// The `config:` block, as JSON text, handed to the component's `init`. `{}` when absent.
    pub config_json: String,
    /// Resource limits per call.
    pub limits: Limits,
}

/// `processors.NAME.limits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most linear memory one instance may grow to, in bytes. Default 64 MiB.
    pub memory_bytes: u64,
    /// The longest one `process` call may run. Default 1s.
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self { memory_bytes: 64 << 20, timeout: Duration::from_secs(1) }
    }
}

/// The smallest `limits.memory`, in bytes (1 MiB: a component needs room for its stack and heap).
pub const MIN_MEMORY: u64 = 1 << 20;

/// `processors.NAME` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessorSection {
    wasm: PathBuf,
    #[serde(default)]
    config: Option<serde_json::Value>,
    #[serde(default)]
    limits: LimitsSection,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LimitsSection {
    #[serde(default, deserialize_with = "units::opt_size")]
    memory: Option<u64>,
    #[serde(default, deserialize_with = "units::opt_duration")]
    timeout: Option<Duration>,
}

impl ProcessorSection {
    /// The processor, its component resolved against `base` (the pipeline file's folder), and
    /// what a parser cannot see (limits below their minimums).
    pub fn into_config(self, base: &std::path::Path) -> (ProcessorConfig, Vec<Problem>) {
        let limits = Limits {
            memory_bytes: self.limits.memory.unwrap_or(Limits::default().memory_bytes),
            timeout: self.limits.timeout.unwrap_or(Limits::default().timeout),
        };
        let mut problems = Vec::new();
        if limits.timeout.is_zero() {
            problems.push(Problem::at("limits.timeout", "must be more than 0"));
        }
        if limits.memory_bytes < MIN_MEMORY {
            problems.push(Problem::at(
                "limits.memory",
                format!(
                    "{} bytes is below the minimum of 1MiB (a component needs room for its stack and heap)",
                    limits.memory_bytes
                ),
            ));
        }
        let wasm = if self.wasm.is_absolute() { self.wasm } else { base.join(self.wasm) };
        let config_json = self.config.unwrap_or_else(|| serde_json::json!({})).to_string();
        (ProcessorConfig { wasm, config_json, limits }, problems)
    }
}
