//! The coordinator in-process: scripted shards, checkpoints in memory, a recording sink.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::lease::LocalLeases;
use crate::source::polling::{OnTrimmed, StreamPolling};
use crate::testing::{self, MemoryCheckpoints, MemoryDeadLetter, RecordingSink, ScriptedShard, ScriptedStreams};

fn settings() -> ReaderSettings {
    ReaderSettings::new(
        &StreamPolling {
            poll_interval: Duration::from_millis(50),
            max_records_per_poll: 10,
            max_consecutive_errors: 5,
            on_trimmed: OnTrimmed::Fail,
            max_records_per_second: None,
            maximum_record_age: None,
            parallelization_factor: 1,
            shard_discovery_interval: Duration::from_secs(1),
            stall_after: crate::source::polling::defaults::STALL_AFTER,
            max_inflight_bytes: crate::source::polling::defaults::MAX_INFLIGHT_BYTES,
        },
        eddy_sink_api::RetryPolicy::default(),
    )
}

/// Closed shards `segment-0..n`, each with `per_shard` records of keys of its own.
fn segments(n: usize, per_shard: u64) -> Vec<ScriptedShard> {
    (0..n)
        .map(|i| {
            let records = (0..per_shard)
                .map(|j| testing::record(i as u64 * 1000 + j + 1, &format!("k{i}-{j}"), 1_700_000_000))
                .collect();
            ScriptedShard::closed(&format!("segment-{i}"), None, records)
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn no_more_readers_run_at_once_than_the_bound_and_every_shard_is_read_to_its_end() {
    let api =
        Arc::new(ScriptedStreams { latency: Duration::from_millis(20), ..ScriptedStreams::new(segments(40, 25)) });
    let checkpoints = Arc::new(MemoryCheckpoints::default());
    let sink = Arc::new(RecordingSink::default());
    let (stop_handle, stop) = crate::stop::channel();
    let coordinator = Coordinator {
        api: Arc::clone(&api) as Arc<dyn StreamsApi>,
        leases: Arc::new(LocalLeases::new(Arc::clone(&checkpoints) as Arc<dyn crate::checkpoint::CheckpointStore>)),
        pipeline: testing::pipeline(Arc::clone(&sink), Arc::new(MemoryDeadLetter::default())),
        start: StartPosition::TrimHorizon,
        discovery_interval: Duration::from_secs(1),
        settings: settings(),
        max_readers: Some(3),
        stop,
        stop_handle,
    };
    coordinator.run().await.unwrap();
    let most = api.max_in_flight.load(Ordering::SeqCst);
    assert!(most <= 3, "{most} GetRecords calls in flight at once");
    assert_eq!(most, 3, "the bound is used");
    assert_eq!(sink.written.lock().unwrap().len(), 40 * 25, "every record delivered");
    let saved = checkpoints.saved.lock().unwrap();
    assert_eq!(saved.len(), 40);
    assert!(saved.values().all(|c| *c == Checkpoint::ShardEnd));
}

/// A child shard is read only after its parent is read to its end, so a key's changes stay in
/// order across a split; a child whose parent is no longer in the stream starts at once.
#[tokio::test(start_paused = true)]
async fn a_child_shard_is_read_after_its_parent_and_an_orphan_at_once() {
    // One key changed in the parent (1..=15) and then in the child (16..=30).
    let key = |from: u64, to: u64| (from..=to).map(|i| testing::record(i, "k", 1_700_000_000)).collect::<Vec<_>>();
    let parent = ScriptedShard::closed("parent", None, key(1, 15));
    let child = ScriptedShard::closed("child", Some("parent"), key(16, 30));
    let orphan = ScriptedShard::closed("orphan", Some("gone"), key(31, 35));
    // The child is listed first: order in DescribeStream must not matter.
    let api = Arc::new(ScriptedStreams {
        latency: Duration::from_millis(5),
        ..ScriptedStreams::new(vec![child, orphan, parent])
    });
    let checkpoints = Arc::new(MemoryCheckpoints::default());
    let sink = Arc::new(RecordingSink::default());
    let (stop_handle, stop) = crate::stop::channel();
    let coordinator = Coordinator {
        api: Arc::clone(&api) as Arc<dyn StreamsApi>,
        leases: Arc::new(LocalLeases::new(Arc::clone(&checkpoints) as Arc<dyn crate::checkpoint::CheckpointStore>)),
        pipeline: testing::pipeline(Arc::clone(&sink), Arc::new(MemoryDeadLetter::default())),
        start: StartPosition::TrimHorizon,
        discovery_interval: Duration::from_secs(1),
        settings: settings(),
        max_readers: None,
        stop,
        stop_handle,
    };
    coordinator.run().await.unwrap();
    let written: Vec<u64> = sink.written.lock().unwrap().iter().map(|s| s.parse().unwrap()).collect();
    let of_key: Vec<u64> = written.iter().copied().filter(|i| *i <= 30).collect();
    assert_eq!(of_key, (1..=30).collect::<Vec<_>>(), "the parent's changes, then the child's");
    let orphan_first = written.iter().position(|i| *i == 31).unwrap();
    let child_first = written.iter().position(|i| *i == 16).unwrap();
    assert!(orphan_first < child_first, "the orphan did not wait: {written:?}");
    let positions = api.positions.lock().unwrap().clone();
    let started = |shard: &str| positions.iter().position(|(s, _)| s == shard).unwrap();
    assert!(started("parent") < started("child"));
}

/// `source.max_inflight_bytes` across 200 shards in backlog, with one lane and with three: the
/// pages held at once never exceed the budget, the budget is used, every record is delivered,
/// and every byte is given back.
#[tokio::test(start_paused = true)]
async fn the_pages_held_across_200_shards_never_exceed_the_memory_budget() {
    for lanes in [1, 3] {
        let api =
            Arc::new(ScriptedStreams { latency: Duration::from_millis(20), ..ScriptedStreams::new(segments(200, 30)) });
        let checkpoints = Arc::new(MemoryCheckpoints::default());
        let sink = Arc::new(RecordingSink::default());
        let (stop_handle, stop) = crate::stop::channel();
        // A page: 10 records of 1,000 bytes and their overhead; room for about 16 at once.
        let page = 10 * (testing::SCRIPTED_RECORD_BYTES + crate::memory::RECORD_OVERHEAD);
        let budget = crate::memory::MemoryBudget::new(16 * page);
        let coordinator = Coordinator {
            api: Arc::clone(&api) as Arc<dyn StreamsApi>,
            leases: Arc::new(LocalLeases::new(Arc::clone(&checkpoints) as Arc<dyn crate::checkpoint::CheckpointStore>)),
            pipeline: testing::pipeline(Arc::clone(&sink), Arc::new(MemoryDeadLetter::default())),
            start: StartPosition::TrimHorizon,
            discovery_interval: Duration::from_secs(1),
            settings: ReaderSettings {
                memory: Some(Arc::clone(&budget)),
                page_bytes_hint: page,
                parallelization_factor: lanes,
                ..settings()
            },
            max_readers: None,
            stop,
            stop_handle,
        };
        coordinator.run().await.unwrap();
        assert!(budget.peak() <= budget.limit(), "{lanes} lanes: {} held of {}", budget.peak(), budget.limit());
        assert!(budget.peak() >= budget.limit() / 2, "{lanes} lanes: the budget is used: {}", budget.peak());
        assert_eq!(budget.held(), 0, "every page's room given back");
        assert_eq!(sink.written.lock().unwrap().len(), 200 * 30, "{lanes} lanes: every record delivered");
    }
}
