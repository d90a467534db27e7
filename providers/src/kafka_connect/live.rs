//! The IO of connector resources (`kafka_connect_connector`, `debezium_source`, `debezium_sink`): one
//! implementation over Connect's REST API, with the Debezium source's incremental-snapshot signal on top.
//!
//! Attributes: `connect_url`, `name`, `config` (the map sent to Connect; secrets in it are only references
//! such as `${env:SHOP_DB_PASSWORD}`, resolved by the worker), `paused`, optionally `credential` (the
//! credential those references name, whose fingerprint is recorded as `secret_fingerprint`) and
//! `connect_credential` (HTTP basic auth). A Debezium source also has `database`, `signal_table` and
//! `credential` for the source database, where the signal is written.

use std::time::Duration;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::client::Connector;
use crate::Action;
use crate::live::{BoxFuture, Change, Ctx, Health, Level, Live, ProviderError};

/// The recorded attribute holding the fingerprint of the connector's secret input.
pub const FINGERPRINT: &str = "secret_fingerprint";
/// The value a read gives [`FINGERPRINT`] when the credential changed since it was applied.
pub const STALE: &str = "stale";
/// How long an apply waits for a connector's tasks to run.
const SETTLE: Duration = Duration::from_secs(60);
/// How many incremental-snapshot signals an apply sends before giving up, and how long it waits for each
/// to be acted on.
const SIGNAL_ATTEMPTS: u32 = 4;
const SIGNAL_WAIT: Duration = Duration::from_secs(12);

/// The IO of a connector kind.
pub struct ConnectorLive {
    /// Whether this is a Debezium source (incremental snapshots of added tables).
    pub debezium_source: bool,
}

/// A fingerprint of the credential `name` as `ds` resolves it now: a hash that tells a rotation, from
/// which the secret cannot be had. `None` when it cannot be resolved here.
pub fn fingerprint(ctx: &Ctx, name: &str) -> Option<String> {
    let credential = ctx.credentials.resolve(name).ok()?;
    let mut hash = Sha256::new();
    for part in [
        "ds-secret-fingerprint",
        name,
        &credential.user,
        credential.password.expose(),
    ] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    let digest = hash.finalize();
    Some(digest[..8].iter().map(|b| format!("{b:02x}")).collect())
}

fn config_of(attributes: Option<&Value>) -> Map<String, Value> {
    attributes
        .and_then(|a| a.get("config"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

fn paused(attributes: Option<&Value>) -> bool {
    attributes
        .and_then(|a| a.get("paused"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn credential(attributes: &Value) -> Option<&str> {
    attributes.get("credential").and_then(Value::as_str)
}

/// Whether Connect (or a proxy in front of it) shows a value masked rather than as it was set.
fn masked(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|v| v == "[hidden]" || (v.len() >= 3 && v.chars().all(|c| c == '*')))
}

/// A live config with masked values taken from the record: a masked secret cannot be compared as text
/// (its rotation shows through the fingerprint instead).
fn unmask(mut live: Map<String, Value>, recorded: &Map<String, Value>) -> Map<String, Value> {
    for (key, value) in live.iter_mut() {
        if masked(value)
            && let Some(recorded) = recorded.get(key)
        {
            *value = recorded.clone();
        }
    }
    live
}

/// The tables of a `table.include.list`.
fn include_list(config: &Map<String, Value>) -> Vec<String> {
    config
        .get("table.include.list")
        .and_then(Value::as_str)
        .map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

impl Live for ConnectorLive {
    fn read<'a>(
        &'a self,
        ctx: &'a Ctx,
        address: &'a str,
        prior: &'a Value,
        _container: Option<&'a Value>,
    ) -> BoxFuture<'a, Result<Option<Value>, ProviderError>> {
        Box::pin(async move {
            let connector = Connector::of(ctx, address, "read", prior)?;
            let Some(config) = connector.config().await? else {
                return Ok(None);
            };
            let status = connector.status().await?;
            let mut now = prior.clone();
            now["config"] = Value::Object(unmask(config, &config_of(Some(prior))));
            let is_paused = status
                .as_ref()
                .is_some_and(|s| matches!(s.connector.as_str(), "PAUSED" | "STOPPED"));
            if is_paused || prior.get("paused").is_some() {
                now["paused"] = json!(is_paused);
            }
            if let Some(status) = &status {
                if status.failed() {
                    ctx.report(Health {
                        address: address.to_string(),
                        level: Level::Failed,
                        message: format!("connector {}: {}", connector.name, status.failure()),
                    });
                } else if status.connector != "RUNNING" && !(is_paused && paused(Some(prior))) {
                    ctx.report(Health {
                        address: address.to_string(),
                        level: Level::Warning,
                        message: format!("connector {}: {}", connector.name, status.summary()),
                    });
                }
            }
            if let (Some(recorded), Some(name)) = (prior.get(FINGERPRINT), credential(prior))
                && let Some(current) = fingerprint(ctx, name)
                && recorded.as_str() != Some(current.as_str())
            {
                now[FINGERPRINT] = json!(STALE);
            }
            Ok(Some(now))
        })
    }

    fn apply<'a>(
        &'a self,
        ctx: &'a Ctx,
        change: Change<'a>,
    ) -> BoxFuture<'a, Result<Option<Value>, ProviderError>> {
        Box::pin(async move {
            let operation = crate::postgres::live::operation_name(change.action);
            let attributes = change
                .desired
                .or(change.prior)
                .expect("a change has desired or prior attributes");
            let connector = Connector::of(ctx, change.address, operation, attributes)?;
            if matches!(change.action, Action::Delete | Action::Replace) {
                // A replace may also move it (another name or cluster): delete it where it was.
                let old = change.prior.map_or(Ok(None), |prior| {
                    Connector::of(ctx, change.address, operation, prior).map(Some)
                })?;
                let old = old.as_ref().unwrap_or(&connector);
                // A source's offsets point into its replication slot, which goes with it: forget them.
                // A sink's are positions in topics that stay, so a sink made again resumes after them.
                if self.debezium_source && old.config().await?.is_some() {
                    old.forget_offsets().await?;
                }
                old.delete().await?;
                if change.action == Action::Delete {
                    return Ok(None);
                }
            }
            let desired = change
                .desired
                .expect("a create or update has desired attributes");
            let config = config_of(Some(desired));
            // A create or replace finds nothing there (a replace deleted it above).
            let fresh = change.action != Action::Update;
            let prior_config = if fresh {
                Map::new()
            } else {
                config_of(change.prior)
            };
            let config_changed = fresh || config != prior_config;
            let mut created = false;
            if config_changed {
                connector.validate(&config).await?;
                created = connector.put(&config).await?;
                if self.debezium_source && fresh {
                    self.forget_stale_offsets(ctx, &connector, desired, &config)
                        .await?;
                }
            }
            let want_paused = paused(Some(desired));
            let was_paused = !fresh && paused(change.prior);
            let fingerprint_now = credential(desired).and_then(|name| fingerprint(ctx, name));
            let rotated = !config_changed
                && change.prior.and_then(|p| p.get(FINGERPRINT))
                    != fingerprint_now.as_ref().map(|f| json!(f)).as_ref();
            if rotated && !want_paused {
                // Same config, new secret: the worker reads it again only when the tasks restart.
                connector.restart(false).await?;
            }
            // Decided from the (refreshed) record, not from the status right after a PUT, which is in
            // transition; pausing a paused connector or resuming a running one changes nothing.
            if want_paused || was_paused {
                connector.set_paused(want_paused).await?;
            }
            if self.debezium_source && !fresh && config_changed && !created && !want_paused {
                self.snapshot_added(ctx, &connector, desired, &prior_config, &config)
                    .await?;
            }
            connector.settle(want_paused, SETTLE).await?;
            let mut recorded = desired.clone();
            if let Some(fingerprint) = fingerprint_now {
                recorded[FINGERPRINT] = json!(fingerprint);
            }
            Ok(Some(recorded))
        })
    }

    fn heal<'a>(
        &'a self,
        ctx: &'a Ctx,
        address: &'a str,
        recorded: &'a Value,
    ) -> BoxFuture<'a, Result<Option<String>, ProviderError>> {
        Box::pin(async move {
            let connector = Connector::of(ctx, address, "restart", recorded)?;
            connector.restart(true).await?;
            Ok(Some(format!(
                "restarted the failed tasks of connector {}",
                connector.name
            )))
        })
    }
}

impl ConnectorLive {
    /// A Debezium source created under a name Connect has offsets for: a connector of that name ran
    /// before, and was deleted without its offsets being forgotten. When they point before what its slot
    /// still has (the slot was made again since), Debezium fails ("no longer available on the server"):
    /// stop it, forget them and resume it, so that it snapshots afresh. Offsets the slot still covers are kept, so that
    /// a connector deleted out of band resumes where it stopped, losing nothing.
    async fn forget_stale_offsets(
        &self,
        ctx: &Ctx,
        connector: &Connector<'_>,
        desired: &Value,
        config: &Map<String, Value>,
    ) -> Result<(), ProviderError> {
        let offsets = connector.offsets().await?;
        let Some(lsn) = offsets.iter().filter_map(|o| o["lsn"].as_i64()).max() else {
            return Ok(());
        };
        let (Some(target), Some(slot)) = (
            crate::postgres::live::Target::of(desired),
            config.get("slot.name").and_then(Value::as_str),
        ) else {
            return Ok(());
        };
        let client = ctx.postgres.lease(ctx, &target, connector.address).await?;
        let restart: Option<i64> = client
            .query_opt(
                "SELECT (restart_lsn - '0/0')::bigint FROM pg_replication_slots \
                 WHERE slot_name = $1 AND database = current_database()",
                &[&slot],
            )
            .await
            .map_err(|e| ProviderError {
                address: connector.address.to_string(),
                operation: "create".into(),
                endpoint: target.endpoint(),
                message: format!(
                    "reading the slot {slot}: {}",
                    crate::postgres::live::describe(&e)
                ),
                transient: false,
            })?
            .and_then(|row| row.get(0));
        if restart.is_none_or(|restart| lsn < restart) && connector.stop().await? {
            // Its task may have failed on them already: it starts afresh when resumed.
            connector.delete_offsets().await?;
            connector.set_paused(false).await?;
        }
        Ok(())
    }

    /// After an update that added tables to a Debezium source's `table.include.list`: waits until the
    /// tasks run with the new list, then writes an `execute-snapshot` signal for the added tables only,
    /// so that their existing rows arrive without snapshotting the others again.
    async fn snapshot_added(
        &self,
        ctx: &Ctx,
        connector: &Connector<'_>,
        desired: &Value,
        prior_config: &Map<String, Value>,
        config: &Map<String, Value>,
    ) -> Result<(), ProviderError> {
        let before = include_list(prior_config);
        let added: Vec<String> = include_list(config)
            .into_iter()
            .filter(|t| !before.contains(t))
            .collect();
        if added.is_empty() {
            return Ok(());
        }
        // The task configs show the new list before the tasks restart with it (necessary, not sufficient:
        // the signal below is repeated until Debezium acts on it).
        let wanted = config.get("table.include.list");
        let started = std::time::Instant::now();
        loop {
            let tasks = connector.task_configs().await?;
            if !tasks.is_empty() && tasks.iter().all(|t| t.get("table.include.list") == wanted) {
                break;
            }
            if started.elapsed() > SETTLE {
                return Err(connector.error(
                    "/tasks",
                    format!(
                        "connector {}: its tasks did not take the new table.include.list within {} s",
                        connector.name,
                        SETTLE.as_secs()
                    ),
                    true,
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        connector.settle(false, SETTLE).await?;
        let target = crate::postgres::live::Target::of(desired);
        let signal_table = desired.get("signal_table").and_then(Value::as_str);
        let (Some(target), Some(signal_table)) = (target, signal_table) else {
            return Err(connector.error(
                "",
                "the attributes do not say where the signal table is (database, credential, signal_table)"
                    .into(),
                false,
            ));
        };
        let client = ctx.postgres.lease(ctx, &target, connector.address).await?;
        let failed = |what: &str, e: tokio_postgres::Error| ProviderError {
            address: connector.address.to_string(),
            operation: "signal".into(),
            endpoint: target.endpoint(),
            message: format!(
                "{what} the signal table {signal_table}: {}",
                crate::postgres::live::describe(&e)
            ),
            transient: false,
        };
        let table = crate::postgres::live::relation(signal_table);
        let windows = format!("SELECT count(*) FROM {table} WHERE type = 'snapshot-window-open'");
        let insert =
            format!("INSERT INTO {table} (id, type, data) VALUES ($1, 'execute-snapshot', $2)");
        let data = json!({ "data-collections": added, "type": "incremental" }).to_string();
        // A task that has not yet restarted with the new table list ignores the signal: Debezium shows
        // that it acted by opening a snapshot window (a row in the signal table); until then, signal again.
        for _ in 0..SIGNAL_ATTEMPTS {
            let before: i64 = client
                .query_one(&windows, &[])
                .await
                .map_err(|e| failed("reading", e))?
                .get(0);
            let id = format!(
                "ds-{}",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos())
            );
            client
                .execute(&insert, &[&id, &data])
                .await
                .map_err(|e| failed("writing into", e))?;
            let started = std::time::Instant::now();
            while started.elapsed() < SIGNAL_WAIT {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let now: i64 = client
                    .query_one(&windows, &[])
                    .await
                    .map_err(|e| failed("reading", e))?
                    .get(0);
                if now > before {
                    return Ok(());
                }
            }
        }
        Err(connector.error(
            "",
            format!(
                "connector {}: no incremental snapshot of {} started after {SIGNAL_ATTEMPTS} signals in {signal_table}",
                connector.name,
                added.join(", ")
            ),
            true,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_values_are_not_compared_as_text() {
        let recorded = json!({"connection.password": "${env:X_PASSWORD}", "topics": "a"});
        let live = json!({"connection.password": "[hidden]", "topics": "b", "other": "****"});
        let unmasked = unmask(
            live.as_object().unwrap().clone(),
            recorded.as_object().unwrap(),
        );
        assert_eq!(unmasked["connection.password"], "${env:X_PASSWORD}");
        // Real differences stay; a masked value with no record stays as it is (drift: a key added).
        assert_eq!(unmasked["topics"], "b");
        assert_eq!(unmasked["other"], "****");
    }

    #[test]
    fn include_lists_split_on_commas() {
        let config = json!({"table.include.list": "public.a, public.b,"});
        assert_eq!(
            include_list(config.as_object().unwrap()),
            ["public.a", "public.b"]
        );
    }
}
