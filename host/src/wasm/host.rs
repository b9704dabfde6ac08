//! The host functions a processor imports (`eddy:processor/host`).

use super::bindings::eddy::processor::{host, types};
use super::HostState;

impl types::Host for HostState {}

impl host::Host for HostState {
    fn log(&mut self, level: types::Level, message: String) {
        let processor = &*self.processor;
        match level {
            types::Level::Trace => tracing::trace!(processor, "{message}"),
            types::Level::Debug => tracing::debug!(processor, "{message}"),
            types::Level::Info => tracing::info!(processor, "{message}"),
            types::Level::Warn => tracing::warn!(processor, "{message}"),
            types::Level::Error => tracing::error!(processor, "{message}"),
        }
    }
}
