//! Tells a snapshot's records from stream records by `event-source` (contract 0.3.0): drops
//! `eddy:snapshot` records, passes the rest.

use eddy_guest::{Change, Guest, Verdict};

struct SkipSnapshot;

impl Guest for SkipSnapshot {
    fn init(_config: String) -> Result<(), String> {
        Ok(())
    }

    fn process(batch: Vec<Change>) -> Vec<Verdict> {
        batch.iter().map(|c| if c.event_source == "eddy:snapshot" { Verdict::Drop } else { Verdict::Pass }).collect()
    }
}

eddy_guest::export!(SkipSnapshot);
