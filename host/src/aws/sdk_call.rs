//! Calling the DynamoDB control plane through the SDK under the pipeline's retry policy, and
//! creating the tables eddy owns (the lease table, the dead-letter table) when missing.

use std::time::Duration;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType};
use aws_sdk_dynamodb::Client;
use eddy_sink_api::RetryPolicy;

/// How one call went, for the retry loop.
pub enum Attempt {
    /// Worth trying again (throttling, 5xx, a timeout, a dropped connection).
    Transient(anyhow::Error),
    /// Retrying cannot help (a missing table, refused credentials).
    Fatal(anyhow::Error),
}

/// Classifies a DynamoDB SDK error ([`super::is_refused`] codes are fatal), counting throttling
/// under `api="dynamodb"`.
pub fn attempt<E, R>(e: SdkError<E, R>) -> Attempt
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    attempt_on("dynamodb", e)
}

/// [`attempt`] for the SDK of `api` (`s3`, ...): throttling counts under that label.
pub fn attempt_on<E, R>(api: &'static str, e: SdkError<E, R>) -> Attempt
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let fatal = super::is_refused(e.code());
    if matches!(e.code(), Some("SlowDown")) {
        crate::events::Throttled { api, n: 1 }.emit();
    }
    let error = failed_on(api, e);
    if fatal {
        Attempt::Fatal(error)
    } else {
        Attempt::Transient(error)
    }
}

/// An SDK error of `api` as an `anyhow` error, counting throttling in `eddy_throttled_total{api}`.
fn failed_on<E, R>(api: &'static str, e: SdkError<E, R>) -> anyhow::Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    if super::is_throttling(e.code()) {
        crate::events::Throttled { api, n: 1 }.emit();
    }
    anyhow::anyhow!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(&e))
}

/// Runs `call` under `retry`: transient failures are tried again; the error says `what` failed
/// and how often it was tried.
///
/// # Errors
/// A fatal failure at once, or the last transient one once the attempts are spent.
pub async fn retried<T, F, Fut>(retry: &RetryPolicy, what: &str, call: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Attempt>>,
{
    retry.retry(call, |e| matches!(e, Attempt::Transient(_))).await.map_err(|(e, tries)| match e {
        Attempt::Fatal(e) => e.context(what.to_owned()),
        Attempt::Transient(e) => e.context(format!("{what} (tried {tries} times)")),
    })
}

/// Checks that table `table` exists, without creating it: what the commands that inspect (`eddy
/// leases`, `eddy dead-letter list`) do, so that a mistyped name is an error instead of a new,
/// billed, empty table. `role` names the table in the error (`lease table`).
///
/// # Errors
/// When the table does not exist (the message says so and names it) or cannot be described.
pub async fn require_table(client: &Client, table: &str, retry: &RetryPolicy, role: &str) -> anyhow::Result<()> {
    let what = format!("cannot describe the {role} {table}");
    let exists = retried(retry, &what, || {
        let sent = client.describe_table().table_name(table).send();
        async move {
            match sent.await {
                Ok(_) => Ok(true),
                Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(false),
                Err(e) => Err(attempt(e)),
            }
        }
    })
    .await?;
    anyhow::ensure!(exists, "the {role} {table} does not exist (only `eddy run` and `eddy snapshot` create it)");
    Ok(())
}

/// Makes sure table `table` exists and is ACTIVE, creating it with on-demand billing and the
/// string key `keys` (hash, then optional range) when missing; another process creating it at
/// the same time is fine. `role` names the table in logs and errors (`lease table`).
///
/// # Errors
/// When the table cannot be described or created, or does not become ACTIVE within 60s.
pub async fn ensure_table(
    client: &Client,
    table: &str,
    keys: &[(&str, KeyType)],
    retry: &RetryPolicy,
    role: &str,
) -> anyhow::Result<()> {
    let describe = || {
        let sent = client.describe_table().table_name(table).send();
        async move {
            match sent.await {
                Ok(out) => Ok(out.table().and_then(|t| t.table_status()).map(|s| s.as_str() == "ACTIVE")),
                Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(None),
                Err(e) => Err(attempt(e)),
            }
        }
    };
    let what = format!("cannot describe the {role} {table}");
    if retried(retry, &what, describe).await? == Some(true) {
        return Ok(());
    }
    let mut create = client.create_table().table_name(table).billing_mode(BillingMode::PayPerRequest);
    for (name, kind) in keys {
        create = create
            .key_schema(KeySchemaElement::builder().attribute_name(*name).key_type(kind.clone()).build()?)
            .attribute_definitions(
                AttributeDefinition::builder().attribute_name(*name).attribute_type(ScalarAttributeType::S).build()?,
            );
    }
    let what = format!("cannot create the {role} {table}");
    let created = retried(retry, &what, || {
        let sent = create.clone().send();
        async move {
            match sent.await {
                Ok(_) => Ok(true),
                // Another process created it at the same time (or our first try did).
                Err(e) if e.code() == Some("ResourceInUseException") => Ok(false),
                Err(e) => Err(attempt(e)),
            }
        }
    })
    .await?;
    if created {
        tracing::info!(table, "created the {role} (on-demand billing)");
    }
    let what = format!("cannot describe the {role} {table}");
    for _ in 0..60 {
        if retried(retry, &what, describe).await? == Some(true) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    anyhow::bail!("the {role} {table} did not become ACTIVE within 60s")
}
