//! The HTTP exchange with CrateDB.

use std::collections::HashMap;

use async_trait::async_trait;
use eddy_record::ChangeRecord;
use eddy_sink_api::{Rejected, RetryPolicy, Sink, SinkError, Timeouts, WriteOutcome};
use serde_json::{json, Value};
use tokio::sync::OnceCell;

use crate::translate::{self, Op, Row};
use crate::CrateDbConfig;

/// Writes changes into one CrateDB table.
pub struct CrateDbSink {
    client: reqwest::Client,
    endpoint: String,
    auth: Option<(String, Option<String>)>,
    statements: Statements,
    batch_size: usize,
    create_table: bool,
    created: OnceCell<()>,
    retry: RetryPolicy,
}

/// The SQL eddy sends for one table.
#[derive(Debug, Clone)]
pub struct Statements {
    table: String,
}

/// Quotes a possibly schema-qualified name: `doc.pets` → `"doc"."pets"`.
fn quote_table(name: &str) -> String {
    name.split('.').map(|part| format!("\"{}\"", part.replace('"', "\"\""))).collect::<Vec<_>>().join(".")
}

fn quote_key(name: &str) -> String {
    format!("pk['{}']", name.replace('\'', "''"))
}

impl Statements {
    /// Statements for `table` (schema-qualified).
    pub fn new(table: &str) -> Self {
        Self { table: quote_table(table) }
    }

    /// Insert-or-replace, keyed by the `pk` sub-columns `keys`:
    /// `INSERT INTO t (pk, data, aux) VALUES (?, ?, ?) ON CONFLICT (pk['id']) DO UPDATE SET ...`.
    pub fn upsert(&self, keys: &[&str]) -> String {
        let target: Vec<String> = keys.iter().map(|k| quote_key(k)).collect();
        format!(
            "INSERT INTO {} (pk, data, aux) VALUES (?, ?, ?) ON CONFLICT ({}) DO UPDATE SET data = excluded.data, aux = excluded.aux",
            self.table,
            target.join(", ")
        )
    }

    /// `DELETE FROM t WHERE pk = ?`.
    pub fn delete(&self) -> String {
        format!("DELETE FROM {} WHERE pk = ?", self.table)
    }

    /// commons-codec's DDL, with the key columns typed from `record`'s keys.
    pub fn create(&self, record: &ChangeRecord) -> String {
        let columns: Vec<String> = record
            .dynamodb
            .keys
            .iter()
            .map(|(name, value)| {
                format!("\"{}\" {} PRIMARY KEY", name.replace('"', "\"\""), translate::key_type(value))
            })
            .collect();
        format!(
            "CREATE TABLE IF NOT EXISTS {} (pk OBJECT(STRICT) AS ({}), data OBJECT(DYNAMIC), aux OBJECT(IGNORED))",
            self.table,
            columns.join(", ")
        )
    }

    /// The statement and arguments one row is written with (for `eddy sink preview`).
    pub fn for_row(&self, row: &Row) -> (String, Vec<Value>) {
        match row.op {
            Op::Upsert => {
                let keys: Vec<&str> = row.pk.keys().map(String::as_str).collect();
                (
                    self.upsert(&keys),
                    vec![
                        Value::Object(row.pk.clone()),
                        Value::Object(row.data.clone()),
                        Value::Object(row.aux.clone()),
                    ],
                )
            }
            Op::Delete => (self.delete(), vec![Value::Object(row.pk.clone())]),
        }
    }
}

/// How a request went.
enum Failure {
    Retryable(String),
    Fatal(String),
}

impl CrateDbSink {
    /// A sink for `config`. Credentials: `CRATEDB_USERNAME`/`CRATEDB_PASSWORD` if set, else the
    /// URL's user info. Each request has `timeouts.connect` to connect and `config.timeout` in
    /// all, and is retried under `retry` when it fails transiently.
    ///
    /// # Errors
    /// When the URL is not http(s); the message masks the URL's password.
    pub fn new(config: &CrateDbConfig, timeouts: &Timeouts, retry: RetryPolicy) -> Result<Self, String> {
        // Messages name the URL with its password masked: it may hold credentials.
        let shown = eddy_sink_api::redact(&config.url);
        let mut url = reqwest::Url::parse(&config.url).map_err(|e| format!("url {shown:?}: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("url {shown:?}: use http:// or https://"));
        }
        let from_url =
            (!url.username().is_empty()).then(|| (url.username().to_owned(), url.password().map(str::to_owned)));
        let from_env = std::env::var("CRATEDB_USERNAME").ok().map(|u| (u, std::env::var("CRATEDB_PASSWORD").ok()));
        let _ = url.set_username("");
        let _ = url.set_password(None);
        let endpoint = url.join("_sql").map_err(|e| e.to_string())?.to_string();
        let client = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .timeout(config.timeout)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            client,
            endpoint,
            auth: from_env.or(from_url),
            statements: Statements::new(&config.table),
            batch_size: config.batch_size.max(1),
            create_table: config.create_table,
            created: OnceCell::new(),
            retry,
        })
    }

    /// The `_sql` endpoint, without credentials.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Sends one request; returns the per-row results of a bulk request.
    async fn send(&self, body: bytes::Bytes) -> Result<Vec<Value>, Failure> {
        let mut request = self.client.post(&self.endpoint).header("content-type", "application/json").body(body);
        if let Some((user, password)) = &self.auth {
            request = request.basic_auth(user, password.as_deref());
        }
        let response = request.send().await.map_err(|e| Failure::Retryable(format!("{}: {e}", self.endpoint)))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| Failure::Retryable(format!("{}: {e}", self.endpoint)))?;
        let parsed: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if let Some(error) = parsed.get("error") {
            let code = error["code"].as_i64().unwrap_or(0);
            let message = format!("CrateDB error {code}: {}", error["message"].as_str().unwrap_or(&text));
            return Err(if code >= 5000 || status.is_server_error() {
                Failure::Retryable(message)
            } else {
                Failure::Fatal(message)
            });
        }
        if status.is_server_error() {
            return Err(Failure::Retryable(format!("{}: HTTP {status}", self.endpoint)));
        }
        if !status.is_success() {
            return Err(Failure::Fatal(format!("{}: HTTP {status}: {text}", self.endpoint)));
        }
        Ok(parsed.get("results").and_then(Value::as_array).cloned().unwrap_or_default())
    }

    /// Sends one request, retrying transient failures (HTTP 5xx, 5xxx codes, connection errors,
    /// timeouts) under the retry policy; other failures are fatal.
    async fn send_with_retry(&self, body: bytes::Bytes) -> Result<Vec<Value>, SinkError> {
        let mut throttled = 0;
        self.retry
            .run(&mut throttled, || async {
                self.send(body.clone()).await.map_err(|f| match f {
                    Failure::Retryable(m) => SinkError::Retryable(m),
                    Failure::Fatal(m) => SinkError::Fatal(m),
                })
            })
            .await
    }

    /// Writes the changes `rows` (index in `batch`, op) with `stmt`, one bulk request per
    /// `batch_size` rows, their `bulk_args` written straight from the records
    /// ([`translate::write_args`]); rows CrateDB refuses for good are returned.
    async fn bulk(&self, stmt: &str, batch: &[&ChangeRecord], rows: &[usize]) -> Result<Vec<Rejected>, SinkError> {
        let mut rejected = Vec::new();
        let head = format!(r#"{{"stmt":{},"bulk_args":["#, serde_json::to_string(stmt).expect("a string serializes"));
        for chunk in rows.chunks(self.batch_size) {
            let mut body = Vec::with_capacity(head.len() + chunk.len() * 1024);
            body.extend_from_slice(head.as_bytes());
            for (n, &index) in chunk.iter().enumerate() {
                if n > 0 {
                    body.push(b',');
                }
                translate::write_args(batch[index], &mut body).map_err(SinkError::Fatal)?;
            }
            body.extend_from_slice(b"]}");
            let results = self.send_with_retry(body.into()).await?;
            if results.len() != chunk.len() {
                return Err(SinkError::Retryable(format!(
                    "CrateDB returned {} results for {} rows",
                    results.len(),
                    chunk.len()
                )));
            }
            for (&index, result) in chunk.iter().zip(results) {
                if result["rowcount"].as_i64() != Some(-2) {
                    continue;
                }
                let code = result["error"]["code"].as_i64().unwrap_or(0);
                let message =
                    result["error"]["message"].as_str().or(result["error_message"].as_str()).unwrap_or("row failed");
                if code >= 5000 {
                    // Transient: the whole write is retried (upserts and deletes are idempotent).
                    return Err(SinkError::Retryable(format!("CrateDB error {code}: {message}")));
                }
                rejected.push(Rejected { index, reason: format!("CrateDB error {code}: {message}") });
            }
        }
        Ok(rejected)
    }
}

/// What one write sends: the operation of the last change of each key, and the changes that
/// cannot be written.
#[derive(Debug, Default)]
pub struct Plan {
    /// `(index in the batch, op)`, in batch order.
    pub rows: Vec<(usize, Op)>,
    /// Changes that cannot be written, with the reason.
    pub rejected: Vec<Rejected>,
}

impl CrateDbSink {
    /// The last change per key wins: one operation per row, so upserts and deletes can go in
    /// separate requests without reordering two changes of one key. (Public for `eddy sink
    /// preview`.)
    pub fn plan(batch: &[&ChangeRecord]) -> Plan {
        let mut plan = Plan::default();
        let mut last: HashMap<&eddy_record::Item, usize> = HashMap::with_capacity(batch.len());
        for (index, record) in batch.iter().enumerate() {
            last.insert(&record.dynamodb.keys, index);
        }
        let mut keep: Vec<usize> = last.into_values().collect();
        keep.sort_unstable();
        for index in keep {
            let record = batch[index];
            match (record.event_name, &record.dynamodb.new_image) {
                (eddy_record::EventName::Remove, _) => plan.rows.push((index, Op::Delete)),
                (_, Some(_)) => plan.rows.push((index, Op::Upsert)),
                (_, None) => match translate::row(record) {
                    Ok(row) => plan.rows.push((index, row.op)),
                    Err(reason) => plan.rejected.push(Rejected { index, reason }),
                },
            }
        }
        plan
    }
}

#[async_trait]
impl Sink for CrateDbSink {
    async fn write(&self, batch: &[&ChangeRecord]) -> Result<WriteOutcome, SinkError> {
        let Plan { rows, mut rejected } = Self::plan(batch);
        if self.create_table {
            if let Some(first) = batch.first() {
                let stmt = self.statements.create(first);
                self.created
                    .get_or_try_init(|| async {
                        let body = serde_json::to_vec(&json!({"stmt": stmt})).expect("JSON serializes");
                        self.send_with_retry(body.into()).await.map(|_| ()).map_err(|e| match e {
                            SinkError::Fatal(m) => SinkError::Fatal(format!("cannot create the table: {m}")),
                            other => other,
                        })
                    })
                    .await?;
            }
        }
        // Upserts are grouped by their key names (the statement's conflict target).
        let mut upserts: HashMap<Vec<&str>, Vec<usize>> = HashMap::new();
        let mut deletes: Vec<usize> = Vec::new();
        for &(index, op) in &rows {
            match op {
                Op::Upsert => upserts
                    .entry(batch[index].dynamodb.keys.keys().map(String::as_str).collect())
                    .or_default()
                    .push(index),
                Op::Delete => deletes.push(index),
            }
        }
        for (keys, group) in &upserts {
            rejected.extend(self.bulk(&self.statements.upsert(keys), batch, group).await?);
        }
        if !deletes.is_empty() {
            rejected.extend(self.bulk(&self.statements.delete(), batch, &deletes).await?);
        }
        rejected.sort_by_key(|r| r.index);
        Ok(WriteOutcome { rejected, throttled: 0 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_quote_names() {
        let s = Statements::new("doc.pets");
        assert_eq!(s.delete(), "DELETE FROM \"doc\".\"pets\" WHERE pk = ?");
        assert_eq!(
            s.upsert(&["pk", "sk"]),
            "INSERT INTO \"doc\".\"pets\" (pk, data, aux) VALUES (?, ?, ?) ON CONFLICT (pk['pk'], pk['sk']) DO UPDATE SET data = excluded.data, aux = excluded.aux"
        );
    }
}
