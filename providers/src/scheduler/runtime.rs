//! What `ds scheduler run` does: claim due jobs from the data platforms' `ds_jobs` tables with row leases,
//! run them, and set when each is due next; and what `ds status` reads.
//!
//! **Leases.** A job is claimed by one `UPDATE ... WHERE job = (SELECT ... FOR UPDATE SKIP LOCKED)`, which
//! sets `lease_owner` and `lease_until`: several schedulers at once each take different jobs, and none takes
//! a job whose lease runs. While a job runs its lease is renewed; a scheduler that dies stops renewing, and
//! its lease expires, so another one takes the job over. (A stream's batch is also guarded by the engine's
//! advisory lock: even a job run twice would not merge one batch twice.)
//!
//! **Due.** A new job is due at once. After a run: an `interval` trigger is due that long after the run
//! started, a `cron` trigger at its next matching minute (UTC), an `external` one never (run it with
//! `ds merge run`). A transformer without a trigger (`after_input_commit`) waits until one of its input
//! streams commits a batch after its last run started: each pass of the scheduler wakes such jobs (`wake`),
//! so commits made by any scheduler or by `ds merge run` count. An ingestion job without a trigger is due a
//! minute later. A failed run is tried again after a minute (or its interval, when shorter).

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::engine::{self, Report};
use crate::live::{Ctx, ProviderError};
use crate::postgres::live::{Target, describe, ident};

/// A data platform whose jobs a scheduler runs: its schema, in its merge database.
#[derive(Debug, Clone)]
pub struct Platform {
    /// The data platform's schema.
    pub schema: String,
    /// Its merge database, with the credential to use there.
    pub merge: Target,
}

/// How a scheduler runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Run every due job once, then return (for cron and tests).
    pub once: bool,
    /// Who holds the leases: host and pid.
    pub owner: String,
    /// How long a lease runs before it must be renewed.
    pub lease: Duration,
    /// How long to wait when no job is due.
    pub idle: Duration,
}

/// What happened to one job run.
#[derive(Debug)]
pub enum Outcome {
    /// A batch committed (or there was nothing new), per stream the job feeds (one; a transformer's
    /// output may feed several data platforms).
    Ran(Vec<Report>),
    /// The run failed; the message says why.
    Failed(String),
}

/// A scheduler's report of one job run.
#[derive(Debug)]
pub struct Run {
    /// `<data platform>.<job>`.
    pub job: String,
    /// What happened.
    pub outcome: Outcome,
}

impl Platform {
    /// A connection to the merge database, for the scheduler's own queries.
    async fn client(&self, ctx: &Ctx) -> Result<crate::postgres::live::Lease, ProviderError> {
        ctx.postgres
            .lease(ctx, &self.merge, &format!("scheduler.{}", self.schema))
            .await
    }
}

fn db_error(platform: &Platform, operation: &str, e: &tokio_postgres::Error) -> ProviderError {
    ProviderError {
        address: format!("scheduler.{}", platform.schema),
        operation: operation.to_string(),
        endpoint: platform.merge.endpoint(),
        message: describe(e),
        transient: false,
    }
}

/// Runs due jobs until `stop` says so (between jobs: a running batch finishes), or, with `once`, until every
/// due job has run once (a transformer woken by a commit of this run once more, so that one pass carries a
/// change through). `report` hears of each run as it ends.
pub async fn run(
    ctx: &Ctx,
    platforms: &[Platform],
    options: &Options,
    stop: &(dyn Fn() -> bool + Sync),
    report: &(dyn Fn(&Run) + Sync),
) -> Result<Vec<Run>, ProviderError> {
    let mut runs = Vec::new();
    let mut done: BTreeSet<(String, String)> = BTreeSet::new();
    loop {
        let mut ran = false;
        for platform in platforms {
            // A transformer woken by a commit of this run may run again, even with `once`.
            for job in wake(ctx, platform).await? {
                done.remove(&(platform.schema.clone(), job));
            }
            loop {
                if stop() {
                    return Ok(runs);
                }
                let skip: Vec<String> = done
                    .iter()
                    .filter(|(schema, _)| schema == &platform.schema)
                    .map(|(_, job)| job.clone())
                    .collect();
                let Some((job, config)) = claim(ctx, platform, options, &skip).await? else {
                    break;
                };
                ran = true;
                let outcome = run_one(ctx, platform, options, &job, &config).await?;
                let run = Run {
                    job: format!("{}.{job}", platform.schema),
                    outcome,
                };
                report(&run);
                runs.push(run);
                if options.once {
                    done.insert((platform.schema.clone(), job));
                }
            }
        }
        if options.once && !ran {
            return Ok(runs);
        }
        if !ran {
            // Wait, but notice a stop within a second.
            let until = std::time::Instant::now() + options.idle;
            while std::time::Instant::now() < until {
                if stop() {
                    return Ok(runs);
                }
                tokio::time::sleep(Duration::from_millis(200).min(options.idle)).await;
            }
        }
    }
}

/// Makes due the transformers of `platform` that wait for their inputs (`after_input_commit`) and whose input
/// streams committed a batch since their last run started (or that never ran); the jobs it woke.
async fn wake(ctx: &Ctx, platform: &Platform) -> Result<Vec<String>, ProviderError> {
    let client = platform.client(ctx).await?;
    let table = format!("{}.ds_jobs", ident(&platform.schema));
    let waiting = client
        .query(
            &format!(
                "SELECT job, config FROM {table} WHERE next_run_at IS NULL \
                 AND config::jsonb ->> 'kind' = 'transform' \
                 AND config::jsonb -> 'trigger' -> 'after_input_commit' IS NOT NULL"
            ),
            &[],
        )
        .await
        .map_err(|e| db_error(platform, "wake", &e))?;
    let mut woken = Vec::new();
    for row in waiting {
        let job: String = row.get(0);
        let config: Value = serde_json::from_str(row.get::<_, &str>(1)).unwrap_or(Value::Null);
        let mut committed = vec!["j.last_started_at IS NULL".to_string()];
        for input in config["inputs"].as_array().into_iter().flatten() {
            let (Some(schema), Some(stream)) =
                (input["data_platform"].as_str(), input["stream"].as_str())
            else {
                continue;
            };
            committed.push(format!(
                "EXISTS (SELECT 1 FROM {}.ds_batch_metrics AS m WHERE m.stream = '{}' \
                 AND m.state = 'committed' AND m.committed_at > j.last_started_at)",
                ident(schema),
                stream.replace('\'', "''")
            ));
        }
        let changed = client
            .execute(
                &format!(
                    "UPDATE {table} AS j SET next_run_at = now() WHERE j.job = $1 \
                     AND j.next_run_at IS NULL AND ({})",
                    committed.join(" OR ")
                ),
                &[&job],
            )
            .await
            .map_err(|e| db_error(platform, "wake", &e))?;
        if changed > 0 {
            woken.push(job);
        }
    }
    Ok(woken)
}

/// Claims one due ingestion job of `platform` not in `skip`: its name and config.
async fn claim(
    ctx: &Ctx,
    platform: &Platform,
    options: &Options,
    skip: &[String],
) -> Result<Option<(String, Value)>, ProviderError> {
    let client = platform.client(ctx).await?;
    let table = format!("{}.ds_jobs", ident(&platform.schema));
    let sql = format!(
        "UPDATE {table} SET lease_owner = $1, lease_until = now() + make_interval(secs => $2), \
         last_started_at = now() \
         WHERE job = (SELECT job FROM {table} WHERE next_run_at <= now() \
                      AND (lease_until IS NULL OR lease_until < now()) \
                      AND NOT (job = ANY($3)) \
                      ORDER BY next_run_at LIMIT 1 FOR UPDATE SKIP LOCKED) \
         RETURNING job, config"
    );
    let row = client
        .query_opt(&sql, &[&options.owner, &options.lease.as_secs_f64(), &skip])
        .await
        .map_err(|e| db_error(platform, "claim", &e))?;
    Ok(row.map(|row| {
        let config: String = row.get(1);
        (
            row.get(0),
            serde_json::from_str(&config).unwrap_or(Value::Null),
        )
    }))
}

/// Runs a claimed job, renewing its lease meanwhile, and records how it went and when it is due next.
async fn run_one(
    ctx: &Ctx,
    platform: &Platform,
    options: &Options,
    job: &str,
    config: &Value,
) -> Result<Outcome, ProviderError> {
    let started = SystemTime::now();
    let table = format!("{}.ds_jobs", ident(&platform.schema));
    let work = async {
        if config["kind"] == "transform" {
            engine::run_transform(ctx, config).await
        } else {
            engine::run_batch(ctx, config, None).await.map(|r| vec![r])
        }
    };
    tokio::pin!(work);
    let result = loop {
        tokio::select! {
            result = &mut work => break result,
            _ = tokio::time::sleep(options.lease / 3) => {
                let client = ctx.postgres.lease(ctx, &platform.merge, job).await?;
                client
                    .execute(
                        &format!("UPDATE {table} SET lease_until = now() + make_interval(secs => $3) \
                                  WHERE job = $1 AND lease_owner = $2"),
                        &[&job, &options.owner, &options.lease.as_secs_f64()],
                    )
                    .await
                    .map_err(|e| db_error(platform, "renew lease", &e))?;
            }
        }
    };
    let trigger = config.get("trigger").cloned().unwrap_or(Value::Null);
    let transform = config["kind"] == "transform";
    // A batch that committed but could not be archived is not a failed run (the data moved; the next run
    // archives it), but it is not `ok` either: `archive_failed`, with why.
    let archive_error = match &result {
        Ok(reports) => reports.iter().find_map(|r| match &r.archive {
            Some(Err(e)) => Some(format!(
                "{}: the batch is committed but not archived: {e}",
                r.stream
            )),
            _ => None,
        }),
        Err(_) => None,
    };
    let (status, error, next) = match &result {
        Ok(_) if archive_error.is_some() => (
            "archive_failed",
            archive_error,
            next_run(&trigger, transform, started),
        ),
        Ok(_) => ("ok", None, next_run(&trigger, transform, started)),
        Err(e) => {
            let retry = trigger
                .get("interval_seconds")
                .and_then(Value::as_u64)
                .map_or(60, |s| s.min(60));
            (
                "failed",
                Some(e.to_string()),
                Some(SystemTime::now() + Duration::from_secs(retry)),
            )
        }
    };
    let client = ctx.postgres.lease(ctx, &platform.merge, job).await?;
    client
        .execute(
            &format!(
                "UPDATE {table} SET lease_owner = NULL, lease_until = NULL, last_finished_at = now(), \
                 last_status = $3, last_error = $4, next_run_at = $5 WHERE job = $1 AND lease_owner = $2"
            ),
            &[&job, &options.owner, &status, &error, &next],
        )
        .await
        .map_err(|e| db_error(platform, "finish", &e))?;
    Ok(match result {
        Ok(reports) => Outcome::Ran(reports),
        Err(e) => Outcome::Failed(e.to_string()),
    })
}

/// When a job (a transformer's when `transform`) whose run started at `started` is due next; `None`: only
/// when run by hand, or, for a transformer without a trigger, when an input commits (`wake`).
pub fn next_run(trigger: &Value, transform: bool, started: SystemTime) -> Option<SystemTime> {
    if let Some(seconds) = trigger.get("interval_seconds").and_then(Value::as_u64) {
        return Some(started + Duration::from_secs(seconds));
    }
    if trigger.get("after_input_commit").is_some() {
        if transform {
            return None;
        }
        // An ingestion job without a trigger looks for new data a minute later.
        return Some(started + Duration::from_secs(60));
    }
    if let Some(cron) = trigger.get("cron").and_then(Value::as_str) {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
        return cron_next(cron, now).map(|s| UNIX_EPOCH + Duration::from_secs(s));
    }
    None
}

/// The values a cron field allows, within `min..=max`.
fn cron_field(field: &str, min: u32, max: u32) -> Option<BTreeSet<u32>> {
    let mut values = BTreeSet::new();
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => (range, step.parse::<u32>().ok().filter(|s| *s > 0)?),
            None => (part, 1),
        };
        let (low, high) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (a.parse().ok()?, b.parse().ok()?)
        } else {
            let v: u32 = range.parse().ok()?;
            (v, if part.contains('/') { max } else { v })
        };
        if low < min || high > max || low > high {
            return None;
        }
        values.extend((low..=high).step_by(step as usize));
    }
    Some(values)
}

/// The first minute after `now` (Unix seconds, UTC) that the 5-field cron expression matches, within a
/// year; day of month and day of week are or-ed when both are restricted, as cron does.
pub fn cron_next(expression: &str, now: u64) -> Option<u64> {
    let fields: Vec<&str> = expression.split_whitespace().collect();
    let [minute, hour, dom, month, dow] = fields.as_slice() else {
        return None;
    };
    let minutes = cron_field(minute, 0, 59)?;
    let hours = cron_field(hour, 0, 23)?;
    let days = cron_field(dom, 1, 31)?;
    let months = cron_field(month, 1, 12)?;
    let mut weekdays = cron_field(dow, 0, 7)?;
    if weekdays.remove(&7) {
        weekdays.insert(0);
    }
    let (dom_any, dow_any) = (*dom == "*", *dow == "*");
    let mut t = (now / 60 + 1) * 60;
    for _ in 0..(366 * 24 * 60) {
        let day = t / 86_400;
        let (_, m, d) = civil(day as i64);
        let weekday = ((day + 4) % 7) as u32; // 1970-01-01 was a Thursday
        let day_ok = match (dom_any, dow_any) {
            (true, true) => true,
            (false, true) => days.contains(&d),
            (true, false) => weekdays.contains(&weekday),
            (false, false) => days.contains(&d) || weekdays.contains(&weekday),
        };
        let minute_of_day = (t % 86_400) / 60;
        if months.contains(&m)
            && day_ok
            && hours.contains(&((minute_of_day / 60) as u32))
            && minutes.contains(&((minute_of_day % 60) as u32))
        {
            return Some(t);
        }
        t += 60;
    }
    None
}

/// `2026-11-29T00:40:05Z`: Unix seconds as UTC text.
pub fn utc(secs: u64) -> String {
    let (y, m, d) = civil((secs / 86_400) as i64);
    let rest = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// (year, month, day) of a day count since 1970-01-01 (the proleptic Gregorian calendar).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// One stream's status, for `ds status`.
#[derive(Debug, Clone)]
pub struct StreamStatus {
    /// `<data platform>.<stream>`.
    pub stream: String,
    /// The last committed batch: id, commit time (Unix seconds), inserted, updated, deleted.
    pub last: Option<(i32, f64, i64, i64, i64)>,
    /// The open batch: id and state.
    pub open: Option<(i32, String)>,
    /// Seconds since the last commit.
    pub lag: Option<f64>,
    /// The job's last run: `ok`, `failed` or `archive_failed`, and the error.
    pub last_run: Option<(String, Option<String>)>,
    /// A data platform with an archive: committed batches not archived yet.
    pub unarchived: Option<i64>,
    /// When the job is due next (Unix seconds); `None`: only by hand.
    pub next: Option<f64>,
}

/// The status of every ingestion stream of `platform`.
pub async fn status(ctx: &Ctx, platform: &Platform) -> Result<Vec<StreamStatus>, ProviderError> {
    let client = platform.client(ctx).await?;
    let schema = ident(&platform.schema);
    // The streams: each ingestion job's, and each transformer output stream of this data platform (fed by
    // a transformer job of any data platform in this merge database, as its config's `streams` say).
    let sql = format!(
        "WITH s AS (SELECT j.config::jsonb ->> 'stream' AS stream, j.job FROM {schema}.ds_jobs AS j \
                    WHERE j.config::jsonb ->> 'kind' = 'ingest' \
                    UNION SELECT o ->> 'stream', j.job FROM {schema}.ds_jobs AS j, \
                      jsonb_array_elements(j.config::jsonb -> 'streams') AS o \
                    WHERE j.config::jsonb ->> 'kind' = 'transform' AND o ->> 'data_platform' = $1) \
         SELECT s.stream, \
                c.batch_id, extract(epoch FROM c.committed_at)::float8, c.rows_inserted, c.rows_updated, c.rows_deleted, \
                o.batch_id, o.state, extract(epoch FROM now() - c.committed_at)::float8, \
                j.last_status, j.last_error, extract(epoch FROM j.next_run_at)::float8, \
                CASE WHEN j.config::jsonb ? 'archive' THEN (SELECT count(*) FROM {schema}.ds_batch_metrics AS m \
                  WHERE m.stream = s.stream AND m.state = 'committed' AND m.archived_at IS NULL) END \
         FROM s JOIN {schema}.ds_jobs AS j ON j.job = s.job \
         LEFT JOIN LATERAL (SELECT * FROM {schema}.ds_batch_metrics AS m WHERE m.stream = s.stream \
                            AND m.state = 'committed' ORDER BY m.batch_id DESC LIMIT 1) AS c ON true \
         LEFT JOIN LATERAL (SELECT * FROM {schema}.ds_batch_metrics AS m WHERE m.stream = s.stream \
                            AND m.state <> 'committed' ORDER BY m.batch_id DESC LIMIT 1) AS o ON true \
         ORDER BY 1"
    );
    let rows = client
        .query(&sql, &[&platform.schema])
        .await
        .map_err(|e| db_error(platform, "status", &e))?;
    Ok(rows
        .iter()
        .map(|row| {
            let stream: Option<String> = row.get(0);
            let last_id: Option<i32> = row.get(1);
            let open_id: Option<i32> = row.get(6);
            let last_status: Option<String> = row.get(9);
            StreamStatus {
                stream: format!("{}.{}", platform.schema, stream.unwrap_or_default()),
                last: last_id.map(|id| {
                    (
                        id,
                        row.get::<_, Option<f64>>(2).unwrap_or(0.0),
                        row.get::<_, Option<i64>>(3).unwrap_or(0),
                        row.get::<_, Option<i64>>(4).unwrap_or(0),
                        row.get::<_, Option<i64>>(5).unwrap_or(0),
                    )
                }),
                open: open_id.map(|id| (id, row.get::<_, Option<String>>(7).unwrap_or_default())),
                lag: row.get(8),
                last_run: last_status.map(|s| (s, row.get(10))),
                next: row.get(11),
                unarchived: row.get(12),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-28 23:21:00 UTC, a Saturday.
    const NOW: u64 = 1_795_908_060;

    #[test]
    fn civil_dates_and_weekdays() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil((NOW / 86_400) as i64), (2026, 11, 28));
        assert_eq!((NOW / 86_400 + 4) % 7, 6);
    }

    #[test]
    fn cron_finds_the_next_matching_minute() {
        // Every 15 minutes: 23:30.
        assert_eq!(cron_next("*/15 * * * *", NOW), Some(NOW + 9 * 60));
        // 02:00 daily: tomorrow.
        assert_eq!(
            cron_next("0 2 * * *", NOW),
            Some(NOW - 23 * 3600 - 21 * 60 + 86_400 + 2 * 3600)
        );
        // Mondays at 00:00: 2026-11-30.
        let monday = cron_next("0 0 * * 1", NOW).unwrap();
        assert_eq!(civil((monday / 86_400) as i64), (2026, 11, 30));
        assert_eq!(monday % 86_400, 0);
        // Sunday as 7.
        let sunday = cron_next("0 0 * * 7", NOW).unwrap();
        assert_eq!(civil((sunday / 86_400) as i64), (2026, 11, 29));
        assert_eq!(cron_next("61 * * * *", NOW), None);
        assert_eq!(cron_next("* * *", NOW), None);
    }

    #[test]
    fn triggers_say_when_a_job_is_due_next() {
        let started = UNIX_EPOCH + Duration::from_secs(NOW);
        assert_eq!(
            next_run(&serde_json::json!({"interval_seconds": 60}), false, started),
            Some(started + Duration::from_secs(60))
        );
        assert_eq!(
            next_run(&serde_json::json!({"external": true}), false, started),
            None
        );
        let after = serde_json::json!({"after_input_commit": true});
        assert_eq!(next_run(&after, true, started), None);
        assert_eq!(
            next_run(&after, false, started),
            Some(started + Duration::from_secs(60))
        );
    }
}
