//! The WebAssembly processor host (wasmtime, component model).
//!
//! - [`Runtime`]: one [`wasmtime::Engine`] for the process, with epoch interruption; a
//!   background thread advances the epoch every [`EPOCH_TICK`], which bounds each call's time.
//! - [`Component`]: a processor compiled once (a `ProcessorPre`, imports resolved) and shared
//!   by all workers.
//! - [`Instance`]: a warm instance of one component for one worker, with its own store and
//!   memory limit; it is replaced after a trap, a timeout, a memory refusal, or
//!   [`RECYCLE_AFTER_CALLS`] calls.
//!
//! A call lends the batch's records to the guest for its duration (`images::LentRecords`):
//! for contract 0.4.0 as one `batch` borrow read by index (`batch.rs`), for 0.3.0 and 0.2.0 as
//! an `image` handle per image (`images.rs`), their other fields lowered with the call.
//!
//! Guests get no filesystem, network, environment or arguments: WASI is linked so that
//! components built for `wasm32-wasip2` load, but every capability is denied.

mod batch;
pub mod config;
mod convert;
mod guest_output;
mod host;
mod images;
pub mod reload;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use wasmtime::component::{HasSelf, Linker, Resource, ResourceTable};
use wasmtime::{Engine, Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use eddy_record::ChangeRecord;

use config::{Limits, ProcessorConfig};
pub use convert::{to_record, GuestChange, Verdict};
use images::{LentRecords, MAX_UNDROPPED_IMAGES};
pub use reload::Processor;

/// Bindings generated from the contract versions this host runs.
mod bindings {
    /// `wit/`: the current contract, [`super::CONTRACT_VERSION`].
    pub mod current {
        wasmtime::component::bindgen!({
            world: "processor",
            path: "../wit",
            ownership: Borrowing { duplicate_if_necessary: true },
            with: { "eddy:processor/types.batch": crate::wasm::batch::BatchRef },
            imports: {
                "eddy:processor/types.[method]batch.event-id": trappable,
                "eddy:processor/types.[method]batch.event-source": trappable,
                "eddy:processor/types.[method]batch.sequence-number": trappable,
                "eddy:processor/types.[method]batch.keys": trappable,
                "eddy:processor/types.[method]batch.get": trappable,
                "eddy:processor/types.[method]batch.names": trappable,
                "eddy:processor/types.[method]batch.to-json": trappable,
            },
        });
    }

    /// Bindings of a frozen contract version before 0.4.0, in module `$name` from the WIT folder
    /// `$path`: each has the same `image` resource, read through [`crate::wasm::images`].
    macro_rules! frozen {
        ($(#[$doc:meta])* $name:ident, $path:tt) => {
            $(#[$doc])*
            pub mod $name {
                wasmtime::component::bindgen!({
                    world: "processor",
                    path: $path,
                    ownership: Borrowing { duplicate_if_necessary: true },
                    with: { "eddy:processor/types.image": crate::wasm::images::ImageRef },
                    imports: {
                        "eddy:processor/types.[method]image.get": trappable,
                        "eddy:processor/types.[method]image.names": trappable,
                        "eddy:processor/types.[method]image.to-json": trappable,
                    },
                });
            }
        };
    }

    frozen!(
        /// `wit/v0.3.0/`: components built against 0.3.0 keep running unchanged.
        v0_3,
        "../wit/v0.3.0"
    );
    frozen!(
        /// `wit/v0.2.0/`: components built against 0.2.0 keep running unchanged.
        v0_2,
        "../wit/v0.2.0"
    );
}

/// The contract version this host implements (the `wit/` package version). Components built for
/// an older version it still runs are listed in [`SUPPORTED_VERSIONS`].
pub const CONTRACT_VERSION: &str = "0.4.0";
/// Every contract version this host runs, newest first.
pub const SUPPORTED_VERSIONS: &[&str] = &["0.4.0", "0.3.0", "0.2.0"];

/// Which contract a component was built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Contract {
    /// [`CONTRACT_VERSION`]
    Current,
    /// 0.3.0: every record's strings, keys and `image` handles lowered with the call.
    V0_3,
    /// 0.2.0: no `event-source` in `change`.
    V0_2,
}

/// A component's imports resolved against one contract version's bindings.
enum Pre {
    Current(bindings::current::ProcessorPre<HostState>),
    V0_3(bindings::v0_3::ProcessorPre<HostState>),
    V0_2(bindings::v0_2::ProcessorPre<HostState>),
}

/// An instance's exports, of one contract version.
enum Bound {
    Current(bindings::current::Processor),
    V0_3(bindings::v0_3::Processor),
    V0_2(bindings::v0_2::Processor),
}

/// How often the epoch advances; call timeouts are rounded up to a multiple of it.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);
/// An instance is replaced by a fresh one after this many calls, so that a slow leak in a guest
/// cannot grow without bound.
pub const RECYCLE_AFTER_CALLS: u64 = 100_000;

/// How many component instances the pooling allocator holds: far more than the warm instances
/// (processors × shard readers) a process keeps at once.
pub const POOL_INSTANCES: u32 = 1_000;

/// The pooling allocator's configuration: [`POOL_INSTANCES`] component instances, each with room
/// for the core instances, memories and tables that Rust, JavaScript and Python components use.
fn pool(max_memory_bytes: u64) -> wasmtime::InstanceAllocationStrategy {
    let mut pool = wasmtime::PoolingAllocationConfig::new();
    pool.total_component_instances(POOL_INSTANCES)
        .total_core_instances(POOL_INSTANCES * 20)
        .max_core_instances_per_component(50)
        .total_memories(POOL_INSTANCES * 2)
        .max_memories_per_component(4)
        .total_tables(POOL_INSTANCES * 20)
        .max_tables_per_component(50)
        .max_memory_size(usize::try_from(max_memory_bytes).unwrap_or(usize::MAX));
    wasmtime::InstanceAllocationStrategy::Pooling(pool)
}

/// The wasmtime this host is built with; part of the compiled-component cache key.
pub const WASMTIME_VERSION: &str = "48.0.8";

/// The process-wide Wasm engine.
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    linker: Arc<Linker<HostState>>,
    cache_dir: Option<std::path::PathBuf>,
}

/// Where compiled components are cached: `EDDY_CACHE_DIR`, else `$XDG_CACHE_HOME/eddy/components`,
/// else `~/.cache/eddy/components`; `EDDY_CACHE_DIR=off` disables the cache.
pub fn default_cache_dir() -> Option<std::path::PathBuf> {
    match std::env::var_os("EDDY_CACHE_DIR") {
        Some(v) if v == "off" => None,
        Some(v) => Some(v.into()),
        None => std::env::var_os("XDG_CACHE_HOME")
            .map(std::path::PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache")))
            .map(|base| base.join("eddy").join("components")),
    }
}

/// What a store holds for one instance.
pub struct HostState {
    processor: Arc<str>,
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
    lent: LentRecords,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl Runtime {
    /// Creates the engine (component model, epoch interruption) and starts the epoch thread,
    /// which ends when the last clone of the runtime is dropped. `max_memory_bytes` is the
    /// largest `limits.memory` of any processor.
    ///
    /// Instances come from wasmtime's pooling allocator, which reserves address space for
    /// [`POOL_INSTANCES`] instances up front and makes instantiation and recycling cheap. Where that
    /// reservation is refused (for example under `ulimit -v`), or with `EDDY_WASM_POOL=off`,
    /// instances are allocated on demand instead; the log says which.
    ///
    /// # Errors
    /// When wasmtime cannot be configured on this machine.
    pub fn new(max_memory_bytes: u64) -> anyhow::Result<Self> {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        let pooling = std::env::var_os("EDDY_WASM_POOL").is_none_or(|v| v != "off");
        let engine = match pooling.then(|| Engine::new(config.clone().allocation_strategy(pool(max_memory_bytes)))) {
            Some(Ok(engine)) => {
                tracing::debug!(instances = POOL_INSTANCES, "Wasm instances come from the pooling allocator");
                engine
            }
            Some(Err(e)) => {
                tracing::info!("the Wasm instance pool cannot be reserved ({e:#}); allocating instances on demand");
                Engine::new(&config)?
            }
            None => Engine::new(&config)?,
        };
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        bindings::current::Processor::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
        bindings::v0_3::Processor::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
        bindings::v0_2::Processor::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("eddy-wasm-epoch".into())
            .spawn(move || loop {
                std::thread::sleep(EPOCH_TICK);
                match ticker.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            })
            .context("cannot start the Wasm epoch thread")?;
        Ok(Self { engine, linker: Arc::new(linker), cache_dir: default_cache_dir() })
    }

    /// Compiles the component of processor `name` once and resolves its imports.
    ///
    /// # Errors
    /// When the file cannot be read, is not a component, targets another contract version
    /// (the message names both versions), or imports something the host does not provide.
    pub fn load(&self, name: &str, config: &ProcessorConfig) -> anyhow::Result<Arc<Component>> {
        let (component, digest) = self
            .compile(&config.wasm)
            .with_context(|| format!("processor {name}: cannot load {}", config.wasm.display()))?;
        let contract =
            contract_of(&self.engine, &component, &config.wasm).with_context(|| format!("processor {name}"))?;
        let pre = self.linker.instantiate_pre(&component).map_err(anyhow::Error::from).with_context(|| {
            format!("processor {name}: {} does not fit the eddy:processor world", config.wasm.display())
        })?;
        let exports = |version: &str| {
            format!(
                "processor {name}: {} does not export the eddy:processor@{version} functions",
                config.wasm.display()
            )
        };
        let pre = match contract {
            Contract::Current => Pre::Current(
                bindings::current::ProcessorPre::new(pre)
                    .map_err(anyhow::Error::from)
                    .with_context(|| exports(CONTRACT_VERSION))?,
            ),
            Contract::V0_3 => Pre::V0_3(
                bindings::v0_3::ProcessorPre::new(pre)
                    .map_err(anyhow::Error::from)
                    .with_context(|| exports("0.3.0"))?,
            ),
            Contract::V0_2 => Pre::V0_2(
                bindings::v0_2::ProcessorPre::new(pre)
                    .map_err(anyhow::Error::from)
                    .with_context(|| exports("0.2.0"))?,
            ),
        };
        let component = Arc::new(Component {
            name: Arc::from(name),
            engine: self.engine.clone(),
            pre,
            call_duration: metrics::histogram!(crate::metrics::WASM_CALL_DURATION, "processor" => name.to_owned()),
            digest,
            config_json: config.config_json.clone(),
            limits: config.limits,
        });
        // Instantiate once now, so a component that rejects its config stops eddy at start.
        component.instantiate()?;
        Ok(component)
    }
}

impl Runtime {
    /// Compiles the component at `path`, or loads its compiled form from the cache, which is keyed
    /// by the SHA-256 of the file and the wasmtime version. A cached artifact wasmtime refuses
    /// (another engine configuration, a damaged file) is replaced by a fresh compilation. Returns
    /// the component and the file's SHA-256 (hex).
    fn compile(&self, path: &Path) -> anyhow::Result<(wasmtime::component::Component, String)> {
        let bytes = std::fs::read(path)?;
        let hash = digest(&bytes);
        let Some(dir) = &self.cache_dir else {
            return Ok((wasmtime::component::Component::new(&self.engine, &bytes)?, hash));
        };
        let cached = dir.join(format!("{hash}-wasmtime-{WASMTIME_VERSION}.cwasm"));
        if cached.exists() {
            // SAFETY: wasmtime requires that the file was produced by `Component::serialize` of a
            // compatible engine and not tampered with. eddy writes this folder itself, and wasmtime
            // checks the engine configuration and version before using it; keep the folder writable
            // by eddy's user only.
            match unsafe { wasmtime::component::Component::deserialize_file(&self.engine, &cached) } {
                Ok(component) => {
                    tracing::debug!(path = %path.display(), cache = %cached.display(), "compiled component loaded from the cache");
                    return Ok((component, hash));
                }
                Err(e) => tracing::warn!(cache = %cached.display(), "ignoring a cached component: {e}"),
            }
        }
        let component = wasmtime::component::Component::new(&self.engine, &bytes)?;
        let store = || -> anyhow::Result<()> {
            std::fs::create_dir_all(dir)?;
            let tmp = dir.join(format!(".{hash}.{}.tmp", std::process::id()));
            std::fs::write(&tmp, component.serialize()?)?;
            std::fs::rename(&tmp, &cached)?;
            Ok(())
        };
        if let Err(e) = store() {
            tracing::warn!(cache = %dir.display(), "cannot cache the compiled component: {e:#}");
        }
        Ok((component, hash))
    }
}

/// The SHA-256 of `bytes`, as lowercase hex.
fn digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of the file at `path`, as lowercase hex.
fn file_digest(path: &Path) -> std::io::Result<String> {
    Ok(digest(&std::fs::read(path)?))
}

/// Which contract version a component was built for, from the version of the
/// `eddy:processor` interfaces it imports; refuses versions this host does not run, naming them.
/// A component that imports none of them is taken to be built for the current one.
fn contract_of(engine: &Engine, component: &wasmtime::component::Component, path: &Path) -> anyhow::Result<Contract> {
    let ty = component.component_type();
    for (import, _) in ty.imports(engine) {
        if let Some(rest) = import.strip_prefix("eddy:processor/") {
            let version = rest.split_once('@').map(|(_, v)| v).unwrap_or("(none)");
            if compatible(version, CONTRACT_VERSION) {
                return Ok(Contract::Current);
            }
            if compatible(version, "0.3.0") {
                return Ok(Contract::V0_3);
            }
            if compatible(version, "0.2.0") {
                return Ok(Contract::V0_2);
            }
            anyhow::bail!(
                "{} was built for eddy:processor@{version}, but this eddy runs eddy:processor@{}; rebuild it against the wit/ of this eddy",
                path.display(),
                SUPPORTED_VERSIONS.join(", @")
            );
        }
    }
    Ok(Contract::Current)
}

/// Same major version (for 0.x: the same minor), as semver treats pre-1.0 versions.
fn compatible(found: &str, ours: &str) -> bool {
    let key = |v: &str| {
        let mut parts = v.split('.');
        let major = parts.next().unwrap_or("").to_owned();
        let minor = parts.next().unwrap_or("").to_owned();
        if major == "0" {
            (major, minor)
        } else {
            (major, String::new())
        }
    };
    key(found) == key(ours)
}

/// A compiled processor, shared by every worker.
pub struct Component {
    name: Arc<str>,
    engine: Engine,
    pre: Pre,
    /// [`crate::metrics::WASM_CALL_DURATION`] for this processor.
    call_duration: metrics::Histogram,
    /// The SHA-256 of the file it was compiled from.
    digest: String,
    config_json: String,
    limits: Limits,
}

impl Component {
    /// The processor's name in the YAML.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A fresh, initialised instance.
    ///
    /// # Errors
    /// When instantiation traps or `init` rejects the config (the component's message).
    pub fn instantiate(self: &Arc<Self>) -> anyhow::Result<Instance> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(usize::try_from(self.limits.memory_bytes).unwrap_or(usize::MAX))
            .trap_on_grow_failure(true)
            .build();
        let wasi = wasmtime_wasi::WasiCtxBuilder::new()
            .allow_tcp(false)
            .allow_udp(false)
            .stdout(guest_output::GuestOutput::new(Arc::clone(&self.name), "stdout"))
            .stderr(guest_output::GuestOutput::new(Arc::clone(&self.name), "stderr"))
            .build();
        let state = HostState {
            processor: Arc::clone(&self.name),
            wasi,
            table: ResourceTable::new(),
            limits,
            lent: LentRecords::default(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(self.deadline_ticks());
        let failed = |e: wasmtime::Error| {
            anyhow::Error::from(e).context(format!("processor {}: instantiation failed", self.name))
        };
        let bindings = match &self.pre {
            Pre::Current(pre) => Bound::Current(pre.instantiate(&mut store).map_err(failed)?),
            Pre::V0_3(pre) => Bound::V0_3(pre.instantiate(&mut store).map_err(failed)?),
            Pre::V0_2(pre) => Bound::V0_2(pre.instantiate(&mut store).map_err(failed)?),
        };
        store.set_epoch_deadline(self.deadline_ticks());
        let init = match &bindings {
            Bound::Current(b) => b.call_init(&mut store, &self.config_json),
            Bound::V0_3(b) => b.call_init(&mut store, &self.config_json),
            Bound::V0_2(b) => b.call_init(&mut store, &self.config_json),
        };
        match init {
            Ok(Ok(())) => {}
            Ok(Err(message)) => {
                anyhow::bail!("processor {} rejected its config: {message}", self.name)
            }
            Err(trap) => return Err(anyhow::Error::from(trap).context(format!("processor {}: init failed", self.name))),
        }
        Ok(Instance { component: Arc::clone(self), store, bindings, calls: 0, changes: Vec::new() })
    }

    fn deadline_ticks(&self) -> u64 {
        let tick = EPOCH_TICK.as_nanos();
        (self.limits.timeout.as_nanos().div_ceil(tick) as u64).max(1) + 1
    }
}

/// A warm instance of one component, owned by one worker.
pub struct Instance {
    component: Arc<Component>,
    store: Store<HostState>,
    bindings: Bound,
    calls: u64,
    /// The 0.4.0 `changes` argument, kept between calls for its allocation.
    changes: Vec<bindings::current::eddy::processor::types::Change>,
}

/// Why a `process` call failed. The instance is unusable afterwards; [`Instance::recycle`] it.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The call ran past `limits.timeout`.
    #[error("processor {processor}: timed out after {timeout:?}")]
    Timeout {
        /// The processor's name.
        processor: String,
        /// `limits.timeout`.
        timeout: Duration,
    },
    /// The guest trapped (a panic, an out-of-bounds access, a memory limit refusal, ...).
    #[error("processor {processor}: trapped: {message}")]
    Trap {
        /// The processor's name.
        processor: String,
        /// What wasmtime said.
        message: String,
    },
    /// The guest returned a verdict list of the wrong length.
    #[error("processor {processor}: returned {got} verdicts for {expected} records")]
    WrongLength {
        /// The processor's name.
        processor: String,
        /// How many verdicts it returned.
        got: usize,
        /// How many records it was given.
        expected: usize,
    },
}

impl Instance {
    /// Calls `process` on `records` and returns one verdict per record, index-aligned. For a
    /// 0.4.0 component only each record's fixed-size fields are lowered and the records are lent
    /// as the call's `batch`; for 0.3.0 and 0.2.0 the records' keys and fields are lowered from
    /// borrows and their images lent as `image` handles for the call.
    ///
    /// # Errors
    /// A [`CallError`]; the instance must then be recycled before the next call.
    pub fn process(&mut self, records: &[&ChangeRecord]) -> Result<Vec<Verdict>, CallError> {
        let processor = || self.component.name.to_string();
        self.calls += 1;
        self.store.set_epoch_deadline(self.component.deadline_ticks());
        self.store.data_mut().lent.next_call();
        // The same call for each contract version before 0.4.0, with that version's conversions.
        macro_rules! call {
            ($version:ident, $bindings:expr) => {{
                let keys = convert::$version::keys(records);
                let params = convert::$version::params(records, &keys, self.store.data_mut())
                    .map_err(|e| CallError::Trap { processor: processor(), message: format!("{e:#}") })?;
                let started = std::time::Instant::now();
                let result =
                    LentRecords::lend(&mut self.store, records, |store| $bindings.call_process(store, &params));
                (started, result.map(|v| v.into_iter().map(Verdict::from).collect::<Vec<_>>()))
            }};
        }
        let (started, result) = match &self.bindings {
            Bound::Current(b) => {
                let mut changes = std::mem::take(&mut self.changes);
                convert::current::changes(records, &mut changes);
                let batch = Resource::new_borrow(self.store.data().lent.batch_rep());
                let started = std::time::Instant::now();
                let result =
                    LentRecords::lend(&mut self.store, records, |store| b.call_process(store, batch, &changes));
                self.changes = changes;
                (started, result.map(|v| v.into_iter().map(Verdict::from).collect::<Vec<_>>()))
            }
            Bound::V0_3(b) => call!(v0_3, b),
            Bound::V0_2(b) => call!(v0_2, b),
        };
        self.component.call_duration.record(started.elapsed().as_secs_f64());
        let undropped = self.store.data().lent.undropped;
        if undropped > MAX_UNDROPPED_IMAGES {
            tracing::warn!(processor = %self.component.name, undropped, "the processor keeps images it does not drop; recycling its instance");
            self.calls = RECYCLE_AFTER_CALLS;
        }
        let verdicts = match result {
            Ok(v) => v,
            Err(e) => {
                return Err(match e.downcast_ref::<wasmtime::Trap>() {
                    Some(wasmtime::Trap::Interrupt) => {
                        CallError::Timeout { processor: processor(), timeout: self.component.limits.timeout }
                    }
                    _ => CallError::Trap { processor: processor(), message: format!("{e:#}") },
                })
            }
        };
        if verdicts.len() != records.len() {
            return Err(CallError::WrongLength {
                processor: processor(),
                got: verdicts.len(),
                expected: records.len(),
            });
        }
        Ok(verdicts)
    }

    /// Whether this instance should be replaced before its next call.
    pub fn worn_out(&self) -> bool {
        self.calls >= RECYCLE_AFTER_CALLS
    }

    /// Replaces this instance with a fresh one of the same component.
    ///
    /// # Errors
    /// As [`Component::instantiate`].
    pub fn recycle(&mut self) -> anyhow::Result<()> {
        *self = self.component.instantiate()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::compatible;

    #[test]
    fn contract_versions() {
        assert!(compatible("0.1.0", "0.1.0"));
        assert!(compatible("0.1.3", "0.1.0"));
        assert!(!compatible("0.2.0", "0.1.0"));
        assert!(compatible("1.4.0", "1.0.0"));
        assert!(!compatible("2.0.0", "1.0.0"));
    }
}
