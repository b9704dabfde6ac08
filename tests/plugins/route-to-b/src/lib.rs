//! Routes every record to the sink `b` (see `../../route_to.rs`).

const SINK: &str = "b";

include!("../../route_to.rs");
