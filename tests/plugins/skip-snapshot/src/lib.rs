//! Tells a snapshot's records from stream records by their `event-source` (read from the batch,
//! contract 0.4.0): drops `eddy:snapshot` records, passes the rest.

use eddy_guest::{Batch, Change, Guest, Verdict};

struct SkipSnapshot;

impl Guest for SkipSnapshot {
    fn init(_config: String) -> Result<(), String> {
        Ok(())
    }

    fn process(batch: &Batch, changes: Vec<Change>) -> Vec<Verdict> {
        eddy_guest::records(batch, &changes)
            .map(|r| if r.event_source() == "eddy:snapshot" { Verdict::Drop } else { Verdict::Pass })
            .collect()
    }
}

eddy_guest::export!(SkipSnapshot);
