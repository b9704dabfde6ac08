//! Routes every record to the sink `a` (see `../../route_to.rs`).

const SINK: &str = "a";

include!("../../route_to.rs");
