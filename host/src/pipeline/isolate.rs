//! Running a batch through one Wasm instance so that one bad record cannot stop the rest: a failed
//! call (trap, timeout, memory refusal, wrong verdict count) recycles the instance and retries
//! the batch once; if it fails again, the batch is bisected until the records that fail alone are
//! found. Those get an error (for the dead letter); every other record gets its verdict.

use eddy_record::ChangeRecord;

use crate::wasm::{Instance, Verdict};

/// A record's outcome: its verdict, or why it failed and how many calls it took part in.
pub type Outcome = Result<Verdict, (String, u32)>;

/// One verdict or error per record of `records`, index-aligned.
pub fn run(instance: &mut Instance, records: &[&ChangeRecord]) -> Vec<Outcome> {
    if records.is_empty() {
        return Vec::new();
    }
    if instance.worn_out() {
        if let Err(e) = instance.recycle() {
            return fail_all(records.len(), &format!("{e:#}"), 1);
        }
    }
    match call(instance, records) {
        Ok(v) => return v,
        Err(e) => tracing::warn!("{e}; retrying the batch of {} records on a fresh instance", records.len()),
    }
    match call(instance, records) {
        Ok(v) => v,
        Err(e) if records.len() == 1 => fail_all(1, &e, 2),
        Err(e) => {
            tracing::warn!("{e}; bisecting the batch of {} records to isolate the failing ones", records.len());
            bisect(instance, records, 2)
        }
    }
}

fn bisect(instance: &mut Instance, records: &[&ChangeRecord], attempts: u32) -> Vec<Outcome> {
    let (left, right) = records.split_at(records.len() / 2);
    let mut out = Vec::with_capacity(records.len());
    for half in [left, right] {
        match call(instance, half) {
            Ok(v) => out.extend(v),
            Err(e) if half.len() == 1 => out.extend(fail_all(1, &e, attempts + 1)),
            Err(_) => out.extend(bisect(instance, half, attempts + 1)),
        }
    }
    out
}

/// One call; on failure the instance is recycled before returning the error.
fn call(instance: &mut Instance, records: &[&ChangeRecord]) -> Result<Vec<Outcome>, String> {
    match instance.process(records) {
        Ok(verdicts) => Ok(verdicts.into_iter().map(Ok).collect()),
        Err(e) => {
            let message = e.to_string();
            if let Err(re) = instance.recycle() {
                return Err(format!("{message}; and the instance could not be recreated: {re:#}"));
            }
            Err(message)
        }
    }
}

fn fail_all(n: usize, message: &str, attempts: u32) -> Vec<Outcome> {
    (0..n).map(|_| Err((message.to_owned(), attempts))).collect()
}
