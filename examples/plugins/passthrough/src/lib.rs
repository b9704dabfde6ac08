//! Passes every record unchanged: measures the cost of the Wasm boundary alone.

use eddy_guest::{Batch, Change, Guest, Verdict};

struct Passthrough;

impl Guest for Passthrough {
    fn init(_config: String) -> Result<(), String> {
        Ok(())
    }

    fn process(_batch: &Batch, changes: Vec<Change>) -> Vec<Verdict> {
        changes.iter().map(|_| Verdict::Pass).collect()
    }
}

eddy_guest::export!(Passthrough);
