//! Passes every record unchanged: measures the cost of the Wasm boundary alone.

use eddy_guest::{Change, Guest, Verdict};

struct Passthrough;

impl Guest for Passthrough {
    fn init(_config: String) -> Result<(), String> {
        Ok(())
    }

    fn process(batch: Vec<Change>) -> Vec<Verdict> {
        batch.iter().map(|_| Verdict::Pass).collect()
    }
}

eddy_guest::export!(Passthrough);
