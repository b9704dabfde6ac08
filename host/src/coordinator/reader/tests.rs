use super::*;
use crate::testing::{self, MemoryCheckpoints, MemoryDeadLetter, RecordingSink, ScriptedShard, ScriptedStreams};

#[test]
fn a_shard_that_just_caught_up_is_polled_again_soon_and_an_idle_one_every_poll_interval() {
    let interval = Duration::from_millis(250);
    assert_eq!(idle_wait(1, interval), CAUGHT_UP_WAIT);
    assert_eq!(idle_wait(2, interval), interval);
    assert_eq!(idle_wait(u32::MAX, interval), interval);
    let short = Duration::from_millis(20);
    assert_eq!(idle_wait(1, short), short, "never longer than poll_interval");
}

#[test]
fn a_page_is_at_the_tip_when_it_is_not_full_and_its_records_are_recent() {
    let recent = Duration::from_millis(800);
    assert!(at_tip(10, 1000, recent));
    assert!(at_tip(0, 1000, Duration::ZERO));
    assert!(!at_tip(1000, 1000, recent), "a full page: more may be waiting");
    assert!(!at_tip(480, 1000, Duration::from_secs(60)), "a page cut short at 1 MB in a backlog");
    assert!(!at_tip(10, 1000, Duration::MAX), "unknown age");
}

#[test]
fn records_over_the_maximum_age_are_taken_out_in_order() {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let record = |seq: &str, created: Option<i64>| {
        let mut r: eddy_record::ChangeRecord = serde_json::from_value(serde_json::json!({
            "eventID": seq, "eventName": "INSERT", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1", "eventSourceARN": "arn",
            "dynamodb": {"Keys": {"id": {"S": seq}}, "SequenceNumber": seq, "SizeBytes": 1,
                         "StreamViewType": "KEYS_ONLY"}
        }))
        .unwrap();
        r.dynamodb.approximate_creation_date_time = created;
        r
    };
    let mut records = vec![
        record("1", Some(now - 7200)),
        record("2", Some(now - 10)),
        record("3", None),
        record("4", Some(now - 3601)),
        record("5", Some(now)),
    ];
    let expired = take_expired(&mut records, Duration::from_secs(3600));
    let seqs =
        |rs: &[eddy_record::ChangeRecord]| rs.iter().map(|r| r.dynamodb.sequence_number.clone()).collect::<Vec<_>>();
    assert_eq!(seqs(&expired), ["1", "4"]);
    assert_eq!(seqs(&records), ["2", "3", "5"]);
    assert!(take_expired(&mut records, Duration::from_secs(3600)).is_empty());
}

/// Settings of the in-process reader tests: pages of 10, quick retries.
fn settings(on_trimmed: OnTrimmed) -> ReaderSettings {
    ReaderSettings::new(
        &crate::source::polling::StreamPolling {
            poll_interval: Duration::from_millis(250),
            max_records_per_poll: 10,
            max_consecutive_errors: 5,
            on_trimmed,
            max_records_per_second: None,
            maximum_record_age: None,
            parallelization_factor: 1,
            shard_discovery_interval: Duration::from_secs(1),
            stall_after: crate::source::polling::defaults::STALL_AFTER,
            max_inflight_bytes: crate::source::polling::defaults::MAX_INFLIGHT_BYTES,
        },
        RetryPolicy::default(),
    )
}

/// Records 1..=n of keys of their own, created long ago (a backlog).
fn records(n: u64) -> Vec<eddy_record::ChangeRecord> {
    (1..=n).map(|i| testing::record(i, &format!("k{i}"), 1_700_000_000)).collect()
}

/// A reader of `shard` of `api` into `sink`, starting at `start`.
struct Rig {
    api: Arc<ScriptedStreams>,
    sink: Arc<RecordingSink>,
    checkpoints: Arc<MemoryCheckpoints>,
    stop: crate::stop::StopHandle,
}

impl Rig {
    fn new(shards: Vec<ScriptedShard>) -> Self {
        Self::with(ScriptedStreams::new(shards), MemoryCheckpoints::default())
    }

    fn with(api: ScriptedStreams, checkpoints: MemoryCheckpoints) -> Self {
        Self {
            api: Arc::new(api),
            sink: Arc::new(RecordingSink::default()),
            checkpoints: Arc::new(checkpoints),
            stop: crate::stop::channel().0,
        }
    }

    fn reader(&mut self, shard: &str, start: IteratorPosition, settings: ReaderSettings) -> ShardReader {
        let (handle, stop) = crate::stop::channel();
        self.stop = handle;
        let pipeline = testing::pipeline(Arc::clone(&self.sink), Arc::new(MemoryDeadLetter::default()));
        ShardReader {
            api: Arc::clone(&self.api) as Arc<dyn StreamsApi>,
            shard_id: shard.to_owned(),
            start,
            workers: vec![pipeline.worker()],
            checkpoints: Arc::clone(&self.checkpoints) as Arc<dyn CheckpointStore>,
            settings,
            stop,
        }
    }

    fn written(&self) -> Vec<u64> {
        self.sink.written.lock().unwrap().iter().map(|s| s.parse().unwrap()).collect()
    }

    fn positions(&self) -> Vec<IteratorPosition> {
        self.api.positions.lock().unwrap().iter().map(|(_, p)| p.clone()).collect()
    }
}

fn seq(i: u64) -> String {
    format!("{i:021}")
}

#[tokio::test(start_paused = true)]
async fn a_closed_shard_is_read_to_its_end_once_in_order_and_checkpointed_per_page() {
    let mut rig = Rig::new(vec![ScriptedShard::closed("s", None, records(25))]);
    let exit = rig.reader("s", IteratorPosition::TrimHorizon, settings(OnTrimmed::Fail)).run().await.unwrap();
    assert_eq!(exit, ReaderExit::ShardEnd);
    assert_eq!(rig.written(), (1..=25).collect::<Vec<_>>());
    let history: Vec<Checkpoint> = rig.checkpoints.history.lock().unwrap().iter().map(|(_, c)| c.clone()).collect();
    assert_eq!(
        history,
        [Checkpoint::After(seq(10)), Checkpoint::After(seq(20)), Checkpoint::After(seq(25)), Checkpoint::ShardEnd]
    );
}

#[tokio::test(start_paused = true)]
async fn an_expired_iterator_is_replaced_by_one_after_the_checkpoint() {
    let api = ScriptedStreams::new(vec![ScriptedShard::closed("s", None, records(25))]);
    // The second GetRecords (the one fetched ahead while page one is written) has expired.
    api.failures.lock().unwrap().insert(2, StreamsError::ExpiredIterator);
    let mut rig = Rig::with(api, MemoryCheckpoints::default());
    let exit = rig.reader("s", IteratorPosition::TrimHorizon, settings(OnTrimmed::Fail)).run().await.unwrap();
    assert_eq!(exit, ReaderExit::ShardEnd);
    assert_eq!(rig.written(), (1..=25).collect::<Vec<_>>(), "nothing lost, nothing twice");
    assert_eq!(rig.positions(), [IteratorPosition::TrimHorizon, IteratorPosition::AfterSequence(seq(10))]);
}

#[tokio::test(start_paused = true)]
async fn trimmed_data_stops_the_reader_with_the_gap_named_or_is_skipped_when_asked() {
    let shard = || ScriptedShard { trimmed: 5, ..ScriptedShard::closed("s", None, records(20)) };
    let old_checkpoint = IteratorPosition::AfterSequence(seq(2));
    let mut rig = Rig::new(vec![shard()]);
    let err = rig.reader("s", old_checkpoint.clone(), settings(OnTrimmed::Fail)).run().await.unwrap_err();
    let err = format!("{err:#}");
    assert!(err.contains("shard s: records after sequence number") && err.contains("trimmed"), "{err}");
    assert!(rig.written().is_empty());

    let mut rig = Rig::new(vec![shard()]);
    let exit = rig.reader("s", old_checkpoint, settings(OnTrimmed::Skip)).run().await.unwrap();
    assert_eq!(exit, ReaderExit::ShardEnd);
    assert_eq!(rig.written(), (6..=20).collect::<Vec<_>>(), "from the oldest record still there");
}

#[tokio::test(start_paused = true)]
async fn throttling_backs_off_and_reading_goes_on() {
    let api = ScriptedStreams::new(vec![ScriptedShard::closed("s", None, records(15))]);
    for call in [1, 2, 3] {
        let e = StreamsError::Transient("LimitExceededException: Rate exceeded".into());
        api.failures.lock().unwrap().insert(call, e);
    }
    let mut rig = Rig::with(api, MemoryCheckpoints::default());
    let started = tokio::time::Instant::now();
    let exit = rig.reader("s", IteratorPosition::TrimHorizon, settings(OnTrimmed::Fail)).run().await.unwrap();
    assert_eq!(exit, ReaderExit::ShardEnd);
    assert_eq!(rig.written(), (1..=15).collect::<Vec<_>>());
    assert!(started.elapsed() > Duration::ZERO, "it waited between the tries");
    // Three more calls than pages: the same iterator was tried again.
    assert_eq!(rig.api.calls.load(std::sync::atomic::Ordering::SeqCst), 2 + 3);
    assert_eq!(rig.positions(), [IteratorPosition::TrimHorizon], "no new iterator was needed");
}

#[tokio::test(start_paused = true)]
async fn too_many_failed_calls_in_a_row_stop_the_reader_with_the_last_error() {
    let api = ScriptedStreams::new(vec![ScriptedShard::closed("s", None, records(15))]);
    for call in 1..=5 {
        api.failures.lock().unwrap().insert(call, StreamsError::Transient("InternalServerError".into()));
    }
    let mut rig = Rig::with(api, MemoryCheckpoints::default());
    let err = rig.reader("s", IteratorPosition::TrimHorizon, settings(OnTrimmed::Fail)).run().await.unwrap_err();
    assert!(format!("{err:#}").contains("GetRecords failed 5 times in a row"), "{err:#}");
}

#[tokio::test(start_paused = true)]
async fn a_sink_failure_rewinds_to_the_checkpoint_and_the_batch_is_read_again() {
    let mut rig = Rig::new(vec![ScriptedShard::closed("s", None, records(25))]);
    // The second write (records 11-20) fails once.
    rig.sink.failures.lock().unwrap().insert(2, eddy_sink_api::SinkError::Retryable("HTTP 500".into()));
    let run = tokio::spawn(rig.reader("s", IteratorPosition::TrimHorizon, settings(OnTrimmed::Fail)).run());
    assert_eq!(run.await.unwrap().unwrap(), ReaderExit::ShardEnd);
    let written = rig.written();
    assert_eq!(written, (1..=25).collect::<Vec<_>>(), "the failed batch was written once, later");
    let positions = rig.positions();
    assert_eq!(positions.last(), Some(&IteratorPosition::AfterSequence(seq(10))), "rewound to the checkpoint");
}

#[tokio::test(start_paused = true)]
async fn a_lost_lease_stops_the_reader_without_reading_further() {
    let checkpoints = MemoryCheckpoints { lose_lease_after: Some(1), ..MemoryCheckpoints::default() };
    let mut rig = Rig::with(ScriptedStreams::new(vec![ScriptedShard::closed("s", None, records(35))]), checkpoints);
    let exit = rig.reader("s", IteratorPosition::TrimHorizon, settings(OnTrimmed::Fail)).run().await.unwrap();
    assert_eq!(exit, ReaderExit::Stopped);
    let saved = rig.checkpoints.saved.lock().unwrap().clone();
    assert_eq!(saved["s"], Checkpoint::After(seq(10)), "the new owner resumes from here");
    assert!(rig.written().len() <= 20, "at most the batch whose checkpoint was refused: {:?}", rig.written());
}

#[tokio::test(start_paused = true)]
async fn at_the_tip_the_next_poll_waits_briefly_and_an_idle_shard_every_poll_interval() {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let fresh: Vec<_> = (1..=3).map(|i| testing::record(i, &format!("k{i}"), now)).collect();
    let mut rig = Rig::new(vec![ScriptedShard::open("s", fresh)]);
    let reader = rig.reader("s", IteratorPosition::TrimHorizon, settings(OnTrimmed::Fail));
    let run = tokio::spawn(reader.run());
    tokio::time::sleep(Duration::from_secs(2)).await;
    rig.stop.stop();
    assert_eq!(run.await.unwrap().unwrap(), ReaderExit::Stopped);
    let times = rig.api.call_times.lock().unwrap().clone();
    assert!(times.len() >= 5, "{times:?}");
    let gap = |i: usize| times[i] - times[i - 1];
    assert_eq!(gap(1), CAUGHT_UP_WAIT, "a page at the tip: the next poll after a short wait");
    assert_eq!(gap(2), CAUGHT_UP_WAIT, "the first empty poll after records: a short wait");
    assert_eq!(gap(3), Duration::from_millis(250), "then every poll_interval");
    assert_eq!(gap(4), Duration::from_millis(250));
}

#[tokio::test(start_paused = true)]
async fn a_backlog_is_polled_again_at_once() {
    let mut rig = Rig::new(vec![ScriptedShard::closed("s", None, records(40))]);
    rig.reader("s", IteratorPosition::TrimHorizon, settings(OnTrimmed::Fail)).run().await.unwrap();
    let times = rig.api.call_times.lock().unwrap().clone();
    assert!(times.windows(2).all(|w| w[1] == w[0]), "no wait between full pages of old records: {times:?}");
}

#[tokio::test(start_paused = true)]
async fn a_stop_with_a_write_that_never_answers_leaves_its_batch_unacknowledged() {
    let mut rig = Rig::new(vec![ScriptedShard::closed("s", None, records(25))]);
    rig.sink.hang.store(true, std::sync::atomic::Ordering::SeqCst);
    let reader = rig.reader("s", IteratorPosition::TrimHorizon, settings(OnTrimmed::Fail));
    let run = tokio::spawn(reader.run());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stopped = tokio::time::Instant::now();
    rig.stop.stop();
    assert_eq!(run.await.unwrap().unwrap(), ReaderExit::Stopped);
    assert_eq!(stopped.elapsed(), crate::stop::GRACE, "abandoned after the grace");
    assert!(rig.checkpoints.history.lock().unwrap().is_empty(), "nothing checkpointed: the batch is read again");
}
