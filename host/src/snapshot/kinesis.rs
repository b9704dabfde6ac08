//! A snapshot before a Kinesis source (`source: {type: kinesis, table, snapshot: {mode:
//! first_run}}`): the stream is read from `at_timestamp` T0 minus `safety_margin` once the scan is
//! done, so the stream must still hold that moment then. Kinesis keeps records 24 hours to 365
//! days (`RetentionPeriodHours`), so no staging is needed, but a scan longer than the retention
//! would lose the changes made early in it: refused at start when the scan's planned duration
//! (the table's approximate item count at `max_items_per_second`) does not fit, and after the
//! scan when T0 minus the margin has left the stream.

use std::num::NonZeroU32;
use std::time::Duration;

use super::Plan;

/// Refuses a snapshot whose planned duration (`approximate_items` at `max_items_per_second`;
/// unknown without a read budget) does not fit in `retention` minus `margin`.
///
/// # Errors
/// A message naming the durations and what to change.
pub fn check_planned(
    approximate_items: u64,
    max_items_per_second: Option<NonZeroU32>,
    retention: Duration,
    margin: Duration,
) -> anyhow::Result<()> {
    let Some(rate) = max_items_per_second else { return Ok(()) };
    let planned = Duration::from_secs(approximate_items / u64::from(rate.get()));
    let room = retention.saturating_sub(margin);
    if planned >= room {
        anyhow::bail!(
            "the snapshot would take about {} (~{approximate_items} items at snapshot.max_items_per_second {rate}), \
             but the Kinesis stream keeps records for {} and the stream must be read from the snapshot's start minus \
             snapshot.safety_margin ({}) once it is done: raise the stream's retention (IncreaseStreamRetentionPeriod) \
             or snapshot.max_items_per_second",
            humantime::format_duration(planned),
            humantime::format_duration(retention),
            humantime::format_duration(margin)
        );
    }
    Ok(())
}

/// After the scan: refuses to go on when T0 minus `margin` is older than the oldest record the
/// stream keeps (`retention` before `now_ms`), naming the gap.
///
/// # Errors
/// A message naming the moments and the gap.
pub fn check_gap(plan: &Plan, margin: Duration, retention: Duration, now_ms: i64) -> anyhow::Result<()> {
    let from_ms = plan.started_at_ms - margin.as_millis() as i64;
    let oldest_ms = now_ms - retention.as_millis() as i64;
    if from_ms < oldest_ms {
        let gap = Duration::from_millis((oldest_ms - from_ms) as u64);
        anyhow::bail!(
            "the snapshot began at {} and the stream must be read from {} before that, but the Kinesis stream keeps \
             records for {} only: the changes of the first {} are gone, so the replica cannot be made whole. Raise the \
             stream's retention and start the migration again (delete the snapshot's plan and checkpoints)",
            plan.started_at(),
            humantime::format_duration(margin),
            humantime::format_duration(retention),
            humantime::format_duration(gap)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);
    const MARGIN: Duration = Duration::from_secs(300);

    #[test]
    fn a_scan_planned_longer_than_the_retention_is_refused_and_one_without_a_budget_is_not_planned() {
        let rate = NonZeroU32::new(1000);
        // 50M items at 1,000/s: ~13.9 h, within a day.
        assert!(check_planned(50_000_000, rate, DAY, MARGIN).is_ok());
        // 100M items: ~27.8 h, longer than a day.
        let e = check_planned(100_000_000, rate, DAY, MARGIN).unwrap_err().to_string();
        assert!(e.contains("keeps records for 1day") && e.contains("max_items_per_second"), "{e}");
        assert!(check_planned(100_000_000, rate, 7 * DAY, MARGIN).is_ok());
        assert!(check_planned(u64::MAX, None, DAY, MARGIN).is_ok(), "no read budget: no plan to check");
    }

    #[test]
    fn the_stream_must_still_hold_the_snapshots_start_minus_the_margin() {
        let plan = Plan { started_at_ms: 1_000_000_000, segments: 4, stream: None };
        let day_ms = DAY.as_millis() as i64;
        assert!(check_gap(&plan, MARGIN, DAY, plan.started_at_ms + day_ms - 301_000).is_ok());
        let e = check_gap(&plan, MARGIN, DAY, plan.started_at_ms + day_ms).unwrap_err().to_string();
        assert!(e.contains("first 5m are gone"), "{e}");
    }
}
