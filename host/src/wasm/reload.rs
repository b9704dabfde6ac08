//! Hot reload: a [`Processor`] holds the component currently in use for one YAML processor and
//! swaps in a new build when its file changes or on SIGHUP. Workers pick the new build up between
//! batches ([`Processor::generation`]), so no batch is half processed by each version and no
//! position is lost. A build that fails to load leaves the running one in place, and the log says
//! why.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use super::config::ProcessorConfig;
use super::{Component, Runtime};
use crate::stop::Stop;

/// How often component files are checked for changes. A change is loaded once the file has
/// looked the same for one whole interval, so a file still being written is not picked up.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// One YAML processor: its config and the component build in use.
pub struct Processor {
    name: String,
    config: ProcessorConfig,
    runtime: Runtime,
    current: RwLock<Arc<Component>>,
    generation: AtomicU64,
    /// The file's (modification time, length) when last loaded or last seen changing.
    stamp: Mutex<Stamps>,
}

#[derive(Default)]
struct Stamps {
    loaded: Option<(SystemTime, u64)>,
    seen: Option<(SystemTime, u64)>,
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

impl Processor {
    /// Loads processor `name` (see [`Runtime::load`]).
    ///
    /// # Errors
    /// As [`Runtime::load`].
    pub fn load(runtime: &Runtime, name: &str, config: &ProcessorConfig) -> anyhow::Result<Arc<Self>> {
        let loaded = stamp(&config.wasm);
        let component = runtime.load(name, config)?;
        Ok(Arc::new(Self {
            name: name.to_owned(),
            config: config.clone(),
            runtime: runtime.clone(),
            current: RwLock::new(component),
            generation: AtomicU64::new(0),
            stamp: Mutex::new(Stamps { loaded, seen: loaded }),
        }))
    }

    /// The processor's name in the YAML.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The build in use.
    pub fn current(&self) -> Arc<Component> {
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Increases with every swap; an instance made at another generation is out of date.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Loads the file again and swaps it in if its content differs from the build in use.
    /// Returns whether it swapped.
    ///
    /// # Errors
    /// When the new build does not load (the running one stays).
    pub fn reload(&self) -> anyhow::Result<bool> {
        // Whatever the outcome, this version of the file has been tried: wait for the next change.
        self.stamp.lock().unwrap_or_else(|p| p.into_inner()).loaded = stamp(&self.config.wasm);
        let digest = super::file_digest(&self.config.wasm)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", self.config.wasm.display()))?;
        if digest == self.current().digest {
            return Ok(false);
        }
        let component = self.runtime.load(&self.name, &self.config)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = component;
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(true)
    }

    /// Whether the file changed since it was loaded and has stayed the same since the last check.
    fn settled_change(&self) -> bool {
        let now = stamp(&self.config.wasm);
        let mut stamps = self.stamp.lock().unwrap_or_else(|p| p.into_inner());
        let settled = now.is_some() && now == stamps.seen && now != stamps.loaded;
        stamps.seen = now;
        settled
    }
}

/// Reloads `processors` whose file changed (checked every [`WATCH_INTERVAL`]), and all of them
/// on SIGHUP, until `stop` is set. Compilation runs on a blocking thread.
pub async fn watch(processors: Vec<Arc<Processor>>, stop: Stop) {
    if processors.is_empty() {
        return;
    }
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("cannot listen for SIGHUP ({e}); component files are still watched");
            None
        }
    };
    loop {
        let due: Vec<Arc<Processor>> = tokio::select! {
            _ = stop.wait() => return,
            Some(()) = async { hangup.as_mut()?.recv().await } => {
                tracing::info!("SIGHUP: reloading every processor");
                processors.clone()
            }
            _ = tokio::time::sleep(WATCH_INTERVAL) => {
                processors.iter().filter(|p| p.settled_change()).cloned().collect()
            }
        };
        for processor in due {
            let name = processor.name().to_owned();
            let outcome = tokio::task::spawn_blocking(move || processor.reload()).await;
            match outcome {
                Ok(Ok(true)) => {
                    tracing::info!(processor = name, "reloaded: the new build takes over from the next batch")
                }
                Ok(Ok(false)) => tracing::debug!(processor = name, "unchanged; nothing to reload"),
                Ok(Err(e)) => {
                    tracing::error!(processor = name, "the new build does not load; the running one stays: {e:#}")
                }
                Err(e) => tracing::error!(processor = name, "reload failed: {e}"),
            }
        }
    }
}
