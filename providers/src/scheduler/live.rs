//! `scheduler_job`'s IO: a row of `<data platform>.ds_jobs` in the merge database, keyed by the job's name
//! (its address after the data platform), holding the job's attributes as JSON in `config`. Applying a job
//! writes its config and leaves the scheduler's bookkeeping (next run, lease, last run) as it is; a new job
//! is due at once.

use serde_json::Value;

use crate::Action;
use crate::live::{BoxFuture, Change, Ctx, Live, ProviderError};
use crate::postgres::live::{Target, describe, ident, operation_name};

/// `scheduler_job`'s IO.
pub struct JobLive;

/// `(schema, job)` of `scheduler_job.<schema>.<job>`.
pub fn job_of(address: &str) -> (&str, &str) {
    let rest = address.strip_prefix("scheduler_job.").unwrap_or(address);
    rest.split_once('.').unwrap_or(("", rest))
}

fn error(
    address: &str,
    operation: &str,
    target: Option<&Target>,
    message: String,
) -> ProviderError {
    ProviderError {
        address: address.to_string(),
        operation: operation.to_string(),
        endpoint: target.map_or("(unknown)".into(), Target::endpoint),
        message,
        transient: false,
    }
}

impl Live for JobLive {
    fn read<'a>(
        &'a self,
        ctx: &'a Ctx,
        address: &'a str,
        _prior: &'a Value,
        container: Option<&'a Value>,
    ) -> BoxFuture<'a, Result<Option<Value>, ProviderError>> {
        Box::pin(async move {
            let target = container.and_then(Target::of).ok_or_else(|| {
                error(
                    address,
                    "read",
                    None,
                    "its data platform's schema is not known".into(),
                )
            })?;
            let (schema, job) = job_of(address);
            let client = ctx.postgres.lease(ctx, &target, address).await?;
            let sql = format!(
                "SELECT config FROM {}.ds_jobs WHERE job = $1",
                ident(schema)
            );
            let row = match client.query_opt(&sql, &[&job]).await {
                Ok(row) => row,
                // No jobs table (yet): no job.
                Err(e) if e.code().is_some_and(|c| c.code() == "42P01") => None,
                Err(e) => return Err(error(address, "read", Some(&target), describe(&e))),
            };
            let Some(row) = row else {
                return Ok(None);
            };
            let text: String = row.get(0);
            let config: Value = serde_json::from_str(&text).map_err(|e| {
                error(
                    address,
                    "read",
                    Some(&target),
                    format!("its config in ds_jobs is not JSON ({e})"),
                )
            })?;
            Ok(Some(config))
        })
    }

    fn apply<'a>(
        &'a self,
        ctx: &'a Ctx,
        change: Change<'a>,
    ) -> BoxFuture<'a, Result<Option<Value>, ProviderError>> {
        Box::pin(async move {
            let operation = operation_name(change.action);
            let target = change.container.and_then(Target::of).ok_or_else(|| {
                error(
                    change.address,
                    operation,
                    None,
                    "its data platform's schema is not known".into(),
                )
            })?;
            let (schema, job) = job_of(change.address);
            let table = format!("{}.ds_jobs", ident(schema));
            let client = ctx.postgres.lease(ctx, &target, change.address).await?;
            let failed = |e: tokio_postgres::Error| {
                error(change.address, operation, Some(&target), describe(&e))
            };
            if change.action == Action::Delete {
                client
                    .execute(&format!("DELETE FROM {table} WHERE job = $1"), &[&job])
                    .await
                    .map_err(failed)?;
                return Ok(None);
            }
            let desired = change.desired.cloned().unwrap_or(Value::Null);
            let config = desired.to_string();
            // A job run only by hand (an `external` trigger) is never due by itself.
            let external = desired["trigger"]["external"] == Value::Bool(true);
            client
                .execute(
                    &format!(
                        "INSERT INTO {table} (job, config, next_run_at) \
                         VALUES ($1, $2, CASE WHEN $3 THEN NULL ELSE now() END) \
                         ON CONFLICT (job) DO UPDATE SET config = EXCLUDED.config"
                    ),
                    &[&job, &config, &external],
                )
                .await
                .map_err(failed)?;
            Ok(Some(desired))
        })
    }
}
