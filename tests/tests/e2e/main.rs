//! eddy's end-to-end tests, one binary (each file a module): the real `eddy` binary against
//! `moto_server` on loopback, the scripted streams endpoint, the fault proxy and the fake CrateDB
//! (`tests/fakes/`), the example and hostile processors, and the chaos soak (`tests/soak/`).
//! Filter one area with nextest: `cargo nextest run -p eddy-e2e -E 'test(/^leases::/)'`.

mod bench_e2e;
mod cli;
mod crash_loop;
mod cratedb;
mod dead_letter_destinations;
mod deploy;
mod failure_destinations;
mod faults;
mod forwarding;
mod hardening;
mod kinesis;
mod lag;
mod leases;
mod metrics;
mod plugin_new;
mod prometheus;
mod reliability;
mod reload;
mod replication;
mod sandbox;
mod snapshot;
mod soak;
mod status;
mod topology;
mod trimmed;
mod verdicts;
