// The body of `route-to-a` and `route-to-b`, which differ only in `SINK`: two builds of one
// processor, so the hot reload test can tell which build handled each record.

use eddy_guest::{Batch, Change, Guest, Verdict};

struct RouteTo;

impl Guest for RouteTo {
    fn init(_config: String) -> Result<(), String> {
        Ok(())
    }

    fn process(_batch: &Batch, changes: Vec<Change>) -> Vec<Verdict> {
        changes.iter().map(|_| Verdict::Route(vec![SINK.to_owned()])).collect()
    }
}

eddy_guest::export!(RouteTo);
