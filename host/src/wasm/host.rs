//! The host functions a processor imports (`eddy:processor/host`), for every contract version.

use super::HostState;

/// `log` for the generated bindings `$module` of one contract version.
macro_rules! host_functions {
    ($module:path) => {
        const _: () = {
            use $module::{host, types};

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
        };
    };
}

host_functions!(super::bindings::current::eddy::processor);
host_functions!(super::bindings::v0_3::eddy::processor);
host_functions!(super::bindings::v0_2::eddy::processor);
