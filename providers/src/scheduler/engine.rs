//! The merge engine: one batch of one ingestion stream, from the source into staging and from staging into
//! the merge tables (product.md §4).
//!
//! A batch moves `started → ingested → committed` in the data platform's `ds_batch_counter` and
//! `ds_batch_metrics`:
//! - **start** (one transaction): the stream's counter row is locked; when its current batch is committed
//!   (or there is none) a new batch `B = current + 1` is opened (`started`); otherwise the open batch is
//!   resumed.
//! - **ingest** (`started`): per dataset, one transaction deletes the dataset's staging rows of `B` (a re-run
//!   starts clean) and streams the source rows in with `COPY ... TO STDOUT` piped into `COPY ... FROM
//!   STDIN` (never holding the table in memory), with both hashes computed by the source's SELECT. Then
//!   the batch is `ingested`.
//! - **merge and commit** (`ingested`, one transaction for every dataset of the batch and the commit): the
//!   live (SCD1) or forensic (SCD2) statements below, the batch marked `committed` with its counts, and
//!   staging pruned to the last `staging_batches_to_keep` batches.
//!
//! A crash anywhere leaves the batch `started` or `ingested`; the next run resumes it, so a batch is merged
//! exactly once, and nothing is lost or doubled. Two runs of one stream at once do not both work: a
//! session advisory lock on the stream (released when its connection ends, so a dead process does not hold
//! it) makes the second one report that the stream is busy.
//!
//! Hashes are MD5 over a null- and separator-safe encoding of the columns in order: each non-NULL column
//! as `<name>=<length>:<text>`, a NULL one as nothing at all. Lengths make it separator-safe (`('ab','c')`
//! and `('a','bc')` differ), names make NULL placement count (`(NULL,'x')` and `('x',NULL)` differ) and
//! tell NULL from `''` (`a=0:`); and a nullable column added to a dataset (NULL in every existing row)
//! leaves every hash as it was, so schema evolution does not make every row look changed.
//! `ds_surf_key_hash` covers the key columns (every column when the dataset has no primary key),
//! `ds_surf_all_hash` every column.

use std::time::{Duration, Instant};

use futures_util::SinkExt;
use serde_json::Value;

use crate::live::Ctx;
use crate::postgres::live::{Target, describe, ident};

/// `ds_surf_batch_out` of the live version of a forensic row.
pub const LIVE: i32 = 2_147_483_647;

/// Why a batch could not be run. The message names the stream, and the dataset and column when one is
/// at fault; never a secret.
#[derive(Debug, thiserror::Error)]
#[error("{stream}: {message}")]
pub struct EngineError {
    /// `<data platform>.<stream>`.
    pub stream: String,
    /// What went wrong.
    pub message: String,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// `<data platform>.<stream>`.
    pub stream: String,
    /// The batch id.
    pub batch: i32,
    /// Whether an open batch (left by a run that stopped) was resumed.
    pub resumed: bool,
    /// Whether there was nothing to ingest (no change event landed): no batch was opened, and `batch` is
    /// the last one.
    pub nothing_new: bool,
    /// Keys new in the merge tables.
    pub inserted: u64,
    /// Keys whose content changed.
    pub updated: u64,
    /// Keys gone.
    pub deleted: u64,
    /// Rows read from the source into staging.
    pub staged: u64,
    /// How long the ingestion took (this run's part of it).
    pub ingest: Duration,
    /// How long the merge and commit took.
    pub merge: Duration,
    /// How long it took.
    pub elapsed: Duration,
    /// An archiving data platform: how many committed batches this run archived, or why archiving failed
    /// (the batch stays committed; the next run archives it).
    pub archive: Option<Result<u32, String>>,
    /// How long archiving took.
    pub archiving: Duration,
}

impl Report {
    /// A run that found nothing to ingest: no batch opened; `batch` is the last one.
    fn nothing_new(stream: &Stream, batch: i32) -> Report {
        Report {
            stream: stream.label.clone(),
            batch,
            resumed: false,
            nothing_new: true,
            inserted: 0,
            updated: 0,
            deleted: 0,
            staged: 0,
            ingest: Duration::ZERO,
            merge: Duration::ZERO,
            elapsed: Duration::ZERO,
            archive: None,
            archiving: Duration::ZERO,
        }
    }
}

/// One dataset of a stream, from the job's `tables`.
#[derive(Debug, Clone)]
pub(super) struct Dataset {
    pub(super) name: String,
    source: Option<String>,
    pub(super) columns: Vec<String>,
    key: Vec<String>,
    pub(super) staging: String,
    pub(super) merge: String,
    landing: Option<String>,
    /// A transformer's SQL, whose result is this dataset's snapshot (instead of a source table).
    query: Option<String>,
}

/// A stream, from a `scheduler_job`'s attributes.
#[derive(Debug, Clone)]
pub(super) struct Stream {
    pub(super) label: String,
    pub(super) schema: String,
    pub(super) stream: String,
    pub(super) forensic: bool,
    capture: String,
    pub(super) keep: i64,
    pub(super) merge: Target,
    source: Option<Target>,
    /// The source is MySQL or MariaDB (read through sqlx), not Postgres.
    mysql: bool,
    /// A kafka store: the bootstrap servers and, per dataset, its topic (`scheduler::kafka`).
    kafka: Option<(String, Vec<(String, String)>)>,
    /// sql_watermark: the column every dataset is read above.
    watermark: Option<String>,
    pub(super) datasets: Vec<Dataset>,
    /// The store (the archive's paths name it).
    pub(super) store: String,
    /// The data platform's archive (`super::archive`), when it has an `archive_bucket`.
    pub(super) archive: Option<super::archive::Archive>,
}

impl Stream {
    pub(super) fn of(job: &Value, only: Option<&str>) -> Result<Stream, String> {
        let text = |key: &str| {
            job.get(key)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| format!("the job has no `{key}`"))
        };
        let schema = text("data_platform")?;
        let stream = text("stream")?;
        let merge = Target::of(&serde_json::json!({
            "database": text("merge_database")?,
            "credential": text("merge_credential")?,
        }))
        .ok_or("the job's merge_database is not `host:port/database`")?;
        let source = job.get("source").and_then(|s| {
            Target::of(&serde_json::json!({
                "database": format!(
                    "{}:{}/{}",
                    s.get("host")?.as_str()?,
                    s.get("port")?.as_u64()?,
                    s.get("database")?.as_str()?
                ),
                "credential": job.get("credential")?,
            }))
        });
        let mut datasets = Vec::new();
        for (name, spec) in job
            .get("tables")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            if only.is_some_and(|o| o != name) {
                continue;
            }
            let strings = |key: &str| -> Vec<String> {
                spec.get(key)
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            };
            let columns: Vec<String> = spec
                .get("columns")
                .and_then(Value::as_str)
                .map(|c| {
                    super::super::postgres::Column::parse_list(c)
                        .iter()
                        .map(|c| c.name.to_string())
                        .collect()
                })
                .unwrap_or_default();
            let field = |key: &str| spec.get(key).and_then(Value::as_str).map(str::to_string);
            datasets.push(Dataset {
                name: name.clone(),
                source: field("source"),
                key: {
                    let key = strings("key");
                    if key.is_empty() { columns.clone() } else { key }
                },
                columns,
                staging: field("staging").ok_or("a dataset has no staging table")?,
                merge: field("merge").ok_or("a dataset has no merge table")?,
                landing: field("landing"),
                query: None,
            });
        }
        if let Some(only) = only
            && datasets.is_empty()
        {
            return Err(format!("the stream has no dataset `{only}`"));
        }
        Ok(Stream {
            label: format!("{schema}.{stream}"),
            schema,
            stream,
            forensic: job.get("milestoning").and_then(Value::as_str) == Some("forensic"),
            capture: text("capture")?,
            keep: job
                .get("staging_batches_to_keep")
                .and_then(Value::as_i64)
                .unwrap_or(5),
            merge,
            source,
            mysql: job.pointer("/source/engine").and_then(Value::as_str) == Some("mysql"),
            kafka: job.get("kafka").and_then(|k| {
                let topics = k
                    .get("topics")?
                    .as_object()?
                    .iter()
                    .filter_map(|(d, t)| Some((d.clone(), t.as_str()?.to_string())))
                    .collect();
                Some((k.get("bootstrap_servers")?.as_str()?.to_string(), topics))
            }),
            watermark: job
                .get("watermark")
                .and_then(Value::as_str)
                .map(str::to_string),
            datasets,
            store: job
                .get("store")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            archive: job
                .get("archive")
                .and_then(|a| serde_json::from_value(a.clone()).ok()),
        })
    }

    /// The source database, for messages.
    fn source_endpoint(&self) -> String {
        match &self.source {
            Some(source) if self.mysql => super::mysql::endpoint(source),
            Some(source) => source.endpoint(),
            None => String::new(),
        }
    }

    pub(super) fn error(&self, message: impl Into<String>) -> EngineError {
        EngineError {
            stream: self.label.clone(),
            message: message.into(),
        }
    }

    pub(super) fn table(&self, name: &str) -> String {
        format!("{}.{}", ident(&self.schema), ident(name))
    }

    /// Whether the stream's events land in landing tables (cdc, kafka) rather than being read from a
    /// source database.
    fn lands(&self) -> bool {
        matches!(self.capture.as_str(), "cdc" | "kafka")
    }
}

/// Whether any of the stream's landing tables holds a row.
async fn landed(
    tx: &tokio_postgres::Transaction<'_>,
    stream: &Stream,
) -> Result<bool, tokio_postgres::Error> {
    for dataset in &stream.datasets {
        if let Some(landing) = &dataset.landing {
            let sql = format!("SELECT EXISTS (SELECT 1 FROM {})", stream.table(landing));
            if tx.query_one(&sql, &[]).await?.get::<_, bool>(0) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Moves the landed change events of every dataset into staging as batch `batch` and marks it ingested, in
/// one transaction: events landing meanwhile (after the high-water `ds_landing_id` read here) wait for the
/// next batch. Several events of one key are conflated to the last one in landing (source) order; a
/// delete (`__op = 'd'`, or a rewritten tombstone) stages as `d`, anything else as `u`.
async fn ingest_landed(
    ctx: &Ctx,
    stream: &Stream,
    address: &str,
    batch: i32,
) -> Result<u64, EngineError> {
    let mut client = ctx
        .postgres
        .lease(ctx, &stream.merge, address)
        .await
        .map_err(|e| stream.error(e.to_string()))?;
    let tx = client
        .transaction()
        .await
        .map_err(|e| stream.error(pg(&e)))?;
    let mut total = 0;
    for dataset in &stream.datasets {
        let at = |message: String| stream.error(format!("dataset {}: {message}", dataset.name));
        let Some(landing) = &dataset.landing else {
            return Err(at("the job names no landing table".into()));
        };
        let landing = stream.table(landing);
        let staging = stream.table(&dataset.staging);
        let high: Option<i64> = tx
            .query_one(&format!("SELECT max(ds_landing_id) FROM {landing}"), &[])
            .await
            .map_err(|e| at(pg(&e)))?
            .get(0);
        let Some(high) = high else {
            continue;
        };
        tx.execute(
            &format!("DELETE FROM {staging} WHERE ds_surf_batch_id = $1"),
            &[&batch],
        )
        .await
        .map_err(|e| at(pg(&e)))?;
        // A delete takes the row's other columns from its live version (an event may carry only the key:
        // a tombstone of a kafka store, a delete under a source's default replica identity); a delete of a
        // key that is not there is dropped.
        let merge = stream.table(&dataset.merge);
        let live_only = if stream.forensic {
            format!(" AND m.ds_surf_batch_out = {LIVE}")
        } else {
            String::new()
        };
        let pick: Vec<String> = dataset
            .columns
            .iter()
            .map(|c| {
                let q = ident(c);
                format!("CASE WHEN e.op = 'd' THEN m.{q} ELSE e.{q} END AS {q}")
            })
            .collect();
        let moved = tx
            .execute(
                &format!(
                    "INSERT INTO {staging} ({cols}, ds_surf_key_hash, ds_surf_all_hash, ds_surf_batch_id, ds_surf_op) \
                     SELECT {cols}, key_hash, {all}, {batch}, op FROM ( \
                       SELECT {pick}, e.key_hash, e.op FROM ( \
                         SELECT DISTINCT ON (key_hash) *, \
                                CASE WHEN __op = 'd' OR __deleted = 'true' THEN 'd' ELSE 'u' END AS op \
                         FROM (SELECT *, {key} AS key_hash FROM {landing} WHERE ds_landing_id <= {high}) AS l \
                         ORDER BY key_hash, ds_landing_id DESC) AS e \
                       LEFT JOIN {merge} AS m ON m.ds_surf_key_hash = e.key_hash{live_only} \
                       WHERE e.op = 'u' OR m.ds_surf_key_hash IS NOT NULL) AS r",
                    cols = list(&dataset.columns, ""),
                    pick = pick.join(", "),
                    key = hash_sql(&dataset.key),
                    all = hash_sql(&dataset.columns),
                ),
                &[],
            )
            .await
            .map_err(|e| at(format!("moving landed events into staging: {}", pg(&e))))?;
        tx.execute(
            &format!("DELETE FROM {landing} WHERE ds_landing_id <= {high}"),
            &[],
        )
        .await
        .map_err(|e| at(pg(&e)))?;
        total += moved;
    }
    tx.execute(
        &format!(
            "UPDATE {} SET state = 'ingested', ingested_at = now() WHERE stream = $1 AND batch_id = $2",
            stream.table("ds_batch_metrics")
        ),
        &[&stream.stream, &batch],
    )
    .await
    .map_err(|e| stream.error(pg(&e)))?;
    tx.commit().await.map_err(|e| stream.error(pg(&e)))?;
    for dataset in &stream.datasets {
        analyze(&client, &stream.table(&dataset.staging))
            .await
            .map_err(|e| {
                stream.error(format!(
                    "dataset {}: analyzing staging: {}",
                    dataset.name,
                    pg(&e)
                ))
            })?;
    }
    Ok(total)
}

/// Fresh statistics for a table a batch just filled: without them the planner takes a freshly loaded
/// staging table for a small one, and a merge that hash-joins in seconds becomes a nested loop that takes
/// hours.
async fn analyze(
    client: &tokio_postgres::Client,
    table: &str,
) -> Result<(), tokio_postgres::Error> {
    client.batch_execute(&format!("ANALYZE {table}")).await
}

/// A Postgres error with where it happened (a COPY names the line and column).
pub(crate) fn pg(error: &tokio_postgres::Error) -> String {
    let mut text = describe(error);
    if let Some(place) = error.as_db_error().and_then(|d| d.where_()) {
        text.push_str(" (");
        text.push_str(place);
        text.push(')');
    }
    text
}

/// The hash expression over `columns` (see the module's documentation). Column names are validated
/// identifiers (lowercase letters, digits, `_`), so they need no quoting inside the literal.
pub fn hash_sql(columns: &[String]) -> String {
    let parts: Vec<String> = columns
        .iter()
        .map(|c| {
            let q = ident(c);
            // `concat` gives the type's output text, as COPY writes it (a `::text` cast would strip a
            // char(n)'s padding).
            format!(
                "CASE WHEN {q} IS NULL THEN '' ELSE '{c}=' || length(concat({q})) || ':' || concat({q}) END"
            )
        })
        .collect();
    format!("md5({})", parts.join(" || "))
}

fn list(columns: &[String], prefix: &str) -> String {
    columns
        .iter()
        .map(|c| format!("{prefix}{}", ident(c)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs one batch of the stream a `scheduler_job`'s attributes describe (only dataset `only`, if given):
/// resumes an open batch, or opens, ingests, merges and commits a new one.
pub async fn run_batch(ctx: &Ctx, job: &Value, only: Option<&str>) -> Result<Report, EngineError> {
    let stream = Stream::of(job, only).map_err(|message| EngineError {
        stream: "(job)".into(),
        message,
    })?;
    if !matches!(
        stream.capture.as_str(),
        "sql_snapshot" | "sql_watermark" | "cdc" | "kafka"
    ) {
        return Err(stream.error(format!(
            "`{}` streams run through their transformer's job (sql_snapshot, sql_watermark, cdc and kafka \
             streams run on their own)",
            stream.capture
        )));
    }
    run_stream(ctx, &stream).await
}

/// Runs a transformer job: its SQL (over its workspace's views, in the merge database) is a snapshot of
/// its output store, ingested and merged as one batch into the output's stream in every data platform
/// that ingests it. Returns one report per stream.
pub async fn run_transform(ctx: &Ctx, job: &Value) -> Result<Vec<Report>, EngineError> {
    let label = format!(
        "{}.transformer__{}",
        job["data_platform"].as_str().unwrap_or("?"),
        job["workspace"].as_str().unwrap_or("?")
    );
    let fail = |message: String| EngineError {
        stream: label.clone(),
        message,
    };
    let sql = job["sql"]
        .as_str()
        .ok_or_else(|| fail("the job has no `sql`".into()))?;
    let mut reports = Vec::new();
    for attributes in job["streams"].as_array().into_iter().flatten() {
        let mut stream = Stream::of(attributes, None).map_err(fail)?;
        let [dataset] = stream.datasets.as_mut_slice() else {
            return Err(stream.error(
                "a transformer's output store must have exactly one dataset: its SQL's result",
            ));
        };
        dataset.query = Some(sql.trim().trim_end_matches(';').to_string());
        stream.source = Some(stream.merge.clone());
        reports.push(run_stream(ctx, &stream).await?);
    }
    Ok(reports)
}

/// A stream's advisory lock, held on a connection of its own (`conn`) for a whole run; two runs of one stream
/// never overlap (`ds merge run`, the scheduler, `ds rebuild`).
pub(super) struct StreamLock {
    pub(super) conn: crate::postgres::live::Lease,
    key: String,
}

impl StreamLock {
    /// Takes the lock of `stream`, or says another run holds it.
    pub(super) async fn take(
        ctx: &Ctx,
        stream: &Stream,
        address: &str,
    ) -> Result<StreamLock, EngineError> {
        let conn = ctx
            .postgres
            .lease(ctx, &stream.merge, address)
            .await
            .map_err(|e| stream.error(e.to_string()))?;
        let key = format!("ds:{}", stream.label);
        let locked: bool = conn
            .query_one("SELECT pg_try_advisory_lock(hashtext($1))", &[&key])
            .await
            .map_err(|e| stream.error(pg(&e)))?
            .get(0);
        if !locked {
            return Err(
                stream.error("another run is working on this stream; try again when it is done")
            );
        }
        Ok(StreamLock { conn, key })
    }

    /// Lets the lock go (a connection that is dropped instead lets it go when it closes).
    pub(super) async fn release(self) {
        let _ = self
            .conn
            .execute("SELECT pg_advisory_unlock(hashtext($1))", &[&self.key])
            .await;
    }
}

/// Runs one batch of `stream`, holding its lock.
async fn run_stream(ctx: &Ctx, stream: &Stream) -> Result<Report, EngineError> {
    let started = Instant::now();
    let address = format!("scheduler_job.{}", stream.label);
    let lock = StreamLock::take(ctx, stream, &address).await?;
    let mut result = batch(ctx, stream, &address).await;
    // Every committed batch not archived yet (this one, and any a failed archive left) goes to the
    // archive; a failure leaves them committed, for the next run.
    if let (Ok(report), Some(archive)) = (&mut result, &stream.archive) {
        let started = Instant::now();
        report.archive =
            Some(super::archive::archive_pending(ctx, stream, archive, &address).await);
        report.archiving = started.elapsed();
    }
    lock.release().await;
    let mut report = result?;
    report.elapsed = started.elapsed();
    Ok(report)
}

async fn batch(ctx: &Ctx, stream: &Stream, address: &str) -> Result<Report, EngineError> {
    let merge_db = |e: crate::live::ProviderError| stream.error(e.to_string());
    // A kafka store's new records land first; the batch then takes them like cdc events.
    if let Some((bootstrap, topics)) = &stream.kafka {
        let topics: Vec<super::kafka::Topic> = stream
            .datasets
            .iter()
            .filter_map(|d| {
                let (_, topic) = topics.iter().find(|(name, _)| *name == d.name)?;
                Some(super::kafka::Topic {
                    topic: topic.clone(),
                    landing: stream.table(d.landing.as_ref()?),
                    columns: d.columns.clone(),
                })
            })
            .collect();
        super::kafka::land(
            ctx,
            &stream.merge,
            address,
            &stream.table("ds_kafka_offsets"),
            &stream.stream,
            bootstrap,
            &topics,
        )
        .await
        .map_err(|e| stream.error(format!("landing the topics: {e}")))?;
    }
    let db = |e: tokio_postgres::Error| stream.error(pg(&e));
    let counter = stream.table("ds_batch_counter");
    let metrics = stream.table("ds_batch_metrics");
    let mut client = ctx
        .postgres
        .lease(ctx, &stream.merge, address)
        .await
        .map_err(merge_db)?;

    // Start, or resume.
    let tx = client.transaction().await.map_err(db)?;
    tx.execute(
        &format!(
            "INSERT INTO {counter} (stream, current_batch) VALUES ($1, 0) ON CONFLICT (stream) DO NOTHING"
        ),
        &[&stream.stream],
    )
    .await
    .map_err(db)?;
    let current: i32 = tx
        .query_one(
            &format!("SELECT current_batch FROM {counter} WHERE stream = $1 FOR UPDATE"),
            &[&stream.stream],
        )
        .await
        .map_err(db)?
        .get(0);
    let state: Option<String> = tx
        .query_opt(
            &format!("SELECT state FROM {metrics} WHERE stream = $1 AND batch_id = $2"),
            &[&stream.stream, &current],
        )
        .await
        .map_err(db)?
        .map(|row| row.get(0));
    let (batch, mut state, resumed) = match state.as_deref() {
        None | Some("committed") if stream.lands() && !landed(&tx, stream).await.map_err(db)? => {
            tx.commit().await.map_err(db)?;
            return Ok(Report::nothing_new(stream, current));
        }
        None | Some("committed") => {
            let batch = current + 1;
            // sql_watermark: the batch reads up to the highest watermark in the source now.
            let high = match &stream.watermark {
                Some(column) => high_watermark(ctx, stream, address, column).await?,
                None => None,
            };
            if stream.watermark.is_some() && high.is_none() {
                tx.commit().await.map_err(db)?;
                return Ok(Report::nothing_new(stream, current));
            }
            tx.execute(
                &format!("UPDATE {counter} SET current_batch = $2 WHERE stream = $1"),
                &[&stream.stream, &batch],
            )
            .await
            .map_err(db)?;
            tx.execute(
                &format!(
                    "INSERT INTO {metrics} (stream, batch_id, state, started_at, high_watermark) \
                     VALUES ($1, $2, 'started', now(), $3)"
                ),
                &[&stream.stream, &batch, &high],
            )
            .await
            .map_err(db)?;
            (batch, "started".to_string(), false)
        }
        Some(open) => (current, open.to_string(), true),
    };
    tx.commit().await.map_err(db)?;
    drop(client);

    let mut staged = 0;
    let ingest_started = Instant::now();
    if state == "started" && stream.lands() {
        // Moving landed events into staging and marking the batch ingested are one transaction.
        staged = ingest_landed(ctx, stream, address, batch).await?;
        state = "ingested".into();
    }
    if state == "started" {
        let filter = match &stream.watermark {
            Some(column) => Some(
                watermark_filter(
                    &mut client_for(ctx, stream, address).await?,
                    stream,
                    column,
                    batch,
                )
                .await?,
            ),
            None => None,
        };
        staged = ingest_snapshot(ctx, stream, address, batch, filter.as_deref()).await?;
        let client = ctx
            .postgres
            .lease(ctx, &stream.merge, address)
            .await
            .map_err(merge_db)?;
        client
            .execute(
                &format!(
                    "UPDATE {metrics} SET state = 'ingested', ingested_at = now() WHERE stream = $1 AND batch_id = $2"
                ),
                &[&stream.stream, &batch],
            )
            .await
            .map_err(db)?;
        state = "ingested".into();
    }
    let ingest = ingest_started.elapsed();
    let merge_started = Instant::now();
    let (inserted, updated, deleted) = if state == "ingested" {
        merge_and_commit(ctx, stream, address, batch).await?
    } else {
        (0, 0, 0)
    };
    let merge = merge_started.elapsed();
    Ok(Report {
        stream: stream.label.clone(),
        batch,
        resumed,
        nothing_new: false,
        inserted,
        updated,
        deleted,
        staged,
        ingest,
        merge,
        elapsed: Duration::ZERO,
        archive: None,
        archiving: Duration::ZERO,
    })
}

async fn client_for(
    ctx: &Ctx,
    stream: &Stream,
    address: &str,
) -> Result<crate::postgres::live::Lease, EngineError> {
    ctx.postgres
        .lease(ctx, &stream.merge, address)
        .await
        .map_err(|e| stream.error(e.to_string()))
}

/// The highest value of the watermark column over every dataset's source table, as text; `None` when they
/// are all empty.
async fn high_watermark(
    ctx: &Ctx,
    stream: &Stream,
    address: &str,
    column: &str,
) -> Result<Option<String>, EngineError> {
    let Some(source) = &stream.source else {
        return Err(stream.error("the job names no source database"));
    };
    let parts: Vec<String> = stream
        .datasets
        .iter()
        .filter_map(|d| d.source.as_ref())
        .map(|t| {
            format!(
                "SELECT max({}) AS m FROM {}",
                ident(column),
                crate::postgres::live::relation(t)
            )
        })
        .collect();
    let reading = |message: String| {
        stream.error(format!(
            "reading the watermark column {column} at {}: {message}",
            stream.source_endpoint()
        ))
    };
    if stream.mysql {
        let sql = format!(
            "SELECT CAST(max(m) AS CHAR) FROM ({}) AS w",
            parts.join(" UNION ALL ")
        );
        return super::mysql::scalar(ctx, source, &sql)
            .await
            .map_err(reading);
    }
    let client = ctx
        .postgres
        .lease(ctx, source, address)
        .await
        .map_err(|e| stream.error(format!("connecting to the source: {e}")))?;
    let sql = format!(
        "SELECT max(m)::text FROM ({}) AS w",
        parts.join(" UNION ALL ")
    );
    let row = client
        .query_one(&sql, &[])
        .await
        .map_err(|e| reading(pg(&e)))?;
    Ok(row.get(0))
}

/// The rows batch `batch` reads: at or above the previous committed batch's high watermark (the boundary
/// value is read again on purpose: rows written later with the same value are not missed, and the merge
/// is keyed, so a row read twice changes nothing) and at or below this batch's.
async fn watermark_filter(
    client: &mut crate::postgres::live::Lease,
    stream: &Stream,
    column: &str,
    batch: i32,
) -> Result<String, EngineError> {
    let metrics = stream.table("ds_batch_metrics");
    let row = client
        .query_one(
            &format!(
                "SELECT (SELECT high_watermark FROM {metrics} WHERE stream = $1 AND batch_id = $2), \
                        (SELECT high_watermark FROM {metrics} WHERE stream = $1 AND batch_id < $2 \
                         AND state = 'committed' ORDER BY batch_id DESC LIMIT 1)"
            ),
            &[&stream.stream, &batch],
        )
        .await
        .map_err(|e| stream.error(pg(&e)))?;
    let high: Option<String> = row.get(0);
    let previous: Option<String> = row.get(1);
    let quote = |v: &str| format!("'{}'", v.replace('\'', "''"));
    let column = ident(column);
    let mut filter = match high {
        Some(high) => format!("{column} <= {}", quote(&high)),
        None => "true".to_string(),
    };
    if let Some(previous) = previous {
        filter.push_str(&format!(" AND {column} >= {}", quote(&previous)));
    }
    Ok(filter)
}

/// Streams every dataset's source rows into staging as batch `batch`: per dataset one transaction, which
/// first removes rows of `batch` a stopped run left.
async fn ingest_snapshot(
    ctx: &Ctx,
    stream: &Stream,
    address: &str,
    batch: i32,
    filter: Option<&str>,
) -> Result<u64, EngineError> {
    let Some(source) = &stream.source else {
        return Err(stream.error("the job names no source database"));
    };
    let mut total = 0;
    for dataset in &stream.datasets {
        let at = |what: &str, message: String| {
            stream.error(format!("dataset {}: {what}: {message}", dataset.name))
        };
        let (table, source_table) = match (&dataset.query, &dataset.source) {
            (Some(query), _) => (
                "the transformer's SQL".to_string(),
                format!("({query}) AS transformer_output"),
            ),
            (None, Some(table)) => (table.clone(), crate::postgres::live::relation(table)),
            (None, None) => return Err(at("reading", "the job names no source table".into())),
        };
        let mut merge_client = ctx
            .postgres
            .lease(ctx, &stream.merge, address)
            .await
            .map_err(|e| stream.error(e.to_string()))?;
        let staging = stream.table(&dataset.staging);
        let tx = merge_client
            .transaction()
            .await
            .map_err(|e| stream.error(pg(&e)))?;
        tx.execute(
            &format!("DELETE FROM {staging} WHERE ds_surf_batch_id = $1"),
            &[&batch],
        )
        .await
        .map_err(|e| at("clearing staging", pg(&e)))?;
        // The source sends the columns; the hashes and the batch id are added here (`rows`).
        let filter = filter.map_or(String::new(), |f| format!(" WHERE {f}"));
        let reading = format!("reading {table} at {}", stream.source_endpoint());
        // The source's COPY text rows, in chunks; a Postgres source's connection is held until its COPY
        // is done.
        let mut source_client = None;
        let out: futures_util::stream::BoxStream<'static, Result<bytes::Bytes, String>> =
            if stream.mysql {
                let columns: Vec<String> = dataset
                    .columns
                    .iter()
                    .map(|c| super::mysql::as_text(c))
                    .collect();
                let select = format!("SELECT {} FROM {source_table}{filter}", columns.join(", "));
                let rows = super::mysql::copy_out(ctx, source, select)
                    .await
                    .map_err(|e| at(&reading, e))?;
                Box::pin(futures_util::stream::unfold(rows, |mut rows| async move {
                    rows.recv().await.map(|chunk| (chunk, rows))
                }))
            } else {
                let client = ctx
                    .postgres
                    .lease(ctx, source, address)
                    .await
                    .map_err(|e| at("connecting to the source", e.to_string()))?;
                let select = format!(
                    "COPY (SELECT {} FROM {source_table}{filter}) TO STDOUT",
                    list(&dataset.columns, "")
                );
                let out = client
                    .copy_out(&select)
                    .await
                    .map_err(|e| at(&reading, pg(&e)))?;
                source_client = Some(client);
                Box::pin(futures_util::StreamExt::map(out, |chunk| {
                    chunk.map_err(|e| pg(&e))
                }))
            };
        let sink = tx
            .copy_in::<_, bytes::Bytes>(&format!(
                "COPY {staging} ({}, ds_surf_key_hash, ds_surf_all_hash, ds_surf_batch_id) FROM STDIN",
                list(&dataset.columns, "")
            ))
            .await
            .map_err(|e| at("writing staging", pg(&e)))?;
        futures_util::pin_mut!(sink);
        // Reading and hashing run in a task of their own, so that they overlap with writing into
        // staging (the source's and the merge database's backends work at the same time too).
        let hasher = super::rows::RowHasher::new(&dataset.columns, &dataset.key, batch);
        let (tx_rows, mut rx_rows) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, String>>(16);
        let reader = tokio::spawn(async move {
            let mut out = out;
            let mut pending: Vec<u8> = Vec::new();
            let mut buffer = bytes::BytesMut::with_capacity(1 << 17);
            while let Some(chunk) = futures_util::StreamExt::next(&mut out).await {
                let chunk = match chunk {
                    Ok(chunk) => chunk,
                    Err(e) => {
                        let _ = tx_rows.send(Err(e)).await;
                        return;
                    }
                };
                // PostgreSQL sends a row a message; a row split over chunks is put together.
                pending.extend_from_slice(&chunk);
                let mut start = 0;
                while let Some(end) = pending[start..].iter().position(|b| *b == b'\n') {
                    hasher.row(&pending[start..start + end], &mut buffer);
                    start += end + 1;
                }
                pending.drain(..start);
                if buffer.len() >= 1 << 16
                    && tx_rows.send(Ok(buffer.split().freeze())).await.is_err()
                {
                    return;
                }
            }
            if !buffer.is_empty() {
                let _ = tx_rows.send(Ok(buffer.split().freeze())).await;
            }
        });
        let copying = format!("copying {table} into staging");
        while let Some(rows) = rx_rows.recv().await {
            let sent = match rows {
                Ok(rows) => sink.send(rows).await.map_err(|e| at(&copying, pg(&e))),
                Err(e) => Err(at(&reading, e)),
            };
            if let Err(e) = sent {
                reader.abort();
                return Err(e);
            }
        }
        if let Err(e) = reader.await {
            return Err(at(&reading, format!("the reading task failed: {e}")));
        }
        // The source connection goes back to its pool only now that its COPY is done.
        drop(source_client);
        let rows = sink
            .as_mut()
            .finish()
            .await
            .map_err(|e| at(&copying, pg(&e)))?;
        tx.commit().await.map_err(|e| stream.error(pg(&e)))?;
        analyze(&merge_client, &staging)
            .await
            .map_err(|e| at("analyzing staging", pg(&e)))?;
        total += rows;
    }
    Ok(total)
}

/// Merges every dataset's staged batch and commits the batch, in one transaction; returns the counts.
async fn merge_and_commit(
    ctx: &Ctx,
    stream: &Stream,
    address: &str,
    batch: i32,
) -> Result<(u64, u64, u64), EngineError> {
    let metrics = stream.table("ds_batch_metrics");
    let mut client = ctx
        .postgres
        .lease(ctx, &stream.merge, address)
        .await
        .map_err(|e| stream.error(e.to_string()))?;
    let tx = client
        .transaction()
        .await
        .map_err(|e| stream.error(pg(&e)))?;
    let (mut inserted, mut updated, mut deleted) = (0, 0, 0);
    for dataset in &stream.datasets {
        let statements = merge_sql(stream, dataset, batch);
        let mut counts = [0u64; 3];
        for (i, statement) in statements.iter().enumerate() {
            counts[i] = tx.execute(statement.as_str(), &[]).await.map_err(|e| {
                stream.error(format!("dataset {}: merging: {}", dataset.name, pg(&e)))
            })?;
        }
        let [changed, gone, added] = counts;
        updated += changed;
        deleted += gone;
        // The forensic insert also writes the new versions of changed keys.
        inserted += if stream.forensic {
            added.saturating_sub(changed)
        } else {
            added
        };
    }
    let (i, u, d) = (inserted as i64, updated as i64, deleted as i64);
    tx.execute(
        &format!(
            "UPDATE {metrics} SET state = 'committed', committed_at = now(), rows_inserted = $3, \
             rows_updated = $4, rows_deleted = $5, error = NULL WHERE stream = $1 AND batch_id = $2"
        ),
        &[&stream.stream, &batch, &i, &u, &d],
    )
    .await
    .map_err(|e| stream.error(pg(&e)))?;
    // An archiving platform keeps a batch's staged rows until they are in the archive.
    prune_staging(&tx, stream, batch, stream.archive.is_some()).await?;
    tx.commit().await.map_err(|e| stream.error(pg(&e)))?;
    // After a large change the merge tables' statistics are stale, for the next merge and for readers.
    if inserted + updated + deleted >= 10_000 {
        for dataset in &stream.datasets {
            analyze(&client, &stream.table(&dataset.merge))
                .await
                .map_err(|e| {
                    stream.error(format!("dataset {}: analyzing: {}", dataset.name, pg(&e)))
                })?;
        }
    }
    Ok((inserted, updated, deleted))
}

/// A staged row that writes its key: a snapshot's (`ds_surf_op` NULL) or an insert or update event's.
const UPSERT: &str = "s.ds_surf_op IS DISTINCT FROM 'd'";

/// The staged rows of `batch`, one per key.
fn staged(stream: &Stream, dataset: &Dataset, batch: i32) -> String {
    format!(
        "(SELECT DISTINCT ON (ds_surf_key_hash) * FROM {} WHERE ds_surf_batch_id = {batch} \
         ORDER BY ds_surf_key_hash)",
        stream.table(&dataset.staging)
    )
}

/// Live (SCD1) merge: update changed keys, delete keys not staged (a snapshot) or staged as deleted (change
/// events), insert new keys. Returns the statements in the order updated, deleted, inserted.
/// Staging keeps the last `staging_batches_to_keep` batches up to `newest` (-1: all); with `only_archived`,
/// a batch not archived yet stays whatever its age.
pub(super) async fn prune_staging(
    tx: &tokio_postgres::Transaction<'_>,
    stream: &Stream,
    newest: i32,
    only_archived: bool,
) -> Result<(), EngineError> {
    if stream.keep < 0 {
        return Ok(());
    }
    let oldest_kept = (newest as i64 - stream.keep).clamp(i32::MIN as i64, i32::MAX as i64) as i32;
    let archived = if only_archived {
        format!(
            " AND ds_surf_batch_id IN (SELECT batch_id FROM {} WHERE stream = '{}' \
             AND archived_at IS NOT NULL)",
            stream.table("ds_batch_metrics"),
            stream.stream.replace('\'', "''")
        )
    } else {
        String::new()
    };
    for dataset in &stream.datasets {
        tx.execute(
            &format!(
                "DELETE FROM {} WHERE ds_surf_batch_id <= $1{archived}",
                stream.table(&dataset.staging)
            ),
            &[&oldest_kept],
        )
        .await
        .map_err(|e| stream.error(pg(&e)))?;
    }
    Ok(())
}

/// The three statements that merge `dataset`'s staged batch, live or forensic as the stream is.
pub(super) fn merge_sql(stream: &Stream, dataset: &Dataset, batch: i32) -> [String; 3] {
    if stream.forensic {
        forensic_sql(stream, dataset, batch)
    } else {
        live_sql(stream, dataset, batch)
    }
}

fn live_sql(stream: &Stream, dataset: &Dataset, batch: i32) -> [String; 3] {
    let upsert = UPSERT;
    let merge = stream.table(&dataset.merge);
    let staging = stream.table(&dataset.staging);
    let source = staged(stream, dataset, batch);
    let set: Vec<String> = dataset
        .columns
        .iter()
        .map(|c| format!("{0} = s.{0}", ident(c)))
        .collect();
    [
        format!(
            "UPDATE {merge} AS m SET {}, ds_surf_all_hash = s.ds_surf_all_hash, ds_surf_batch_id = {batch} \
             FROM {source} AS s WHERE m.ds_surf_key_hash = s.ds_surf_key_hash \
             AND m.ds_surf_all_hash <> s.ds_surf_all_hash AND {upsert}",
            set.join(", ")
        ),
        if stream.watermark.is_some() {
            // Watermark ingestion reads changed rows only: it never deletes.
            format!("DELETE FROM {merge} WHERE false")
        } else if stream.lands() {
            format!(
                "DELETE FROM {merge} AS m USING {source} AS s \
                 WHERE m.ds_surf_key_hash = s.ds_surf_key_hash AND s.ds_surf_op = 'd'"
            )
        } else {
            format!(
                "DELETE FROM {merge} AS m WHERE NOT EXISTS (SELECT 1 FROM {staging} AS s \
                 WHERE s.ds_surf_batch_id = {batch} AND s.ds_surf_key_hash = m.ds_surf_key_hash)"
            )
        },
        format!(
            "INSERT INTO {merge} ({cols}, ds_surf_key_hash, ds_surf_all_hash, ds_surf_batch_id) \
             SELECT {scols}, s.ds_surf_key_hash, s.ds_surf_all_hash, {batch} FROM {source} AS s \
             WHERE {upsert} AND NOT EXISTS (SELECT 1 FROM {merge} AS m WHERE m.ds_surf_key_hash = s.ds_surf_key_hash)",
            cols = list(&dataset.columns, ""),
            scols = list(&dataset.columns, "s."),
        ),
    ]
}

/// Forensic (SCD2) merge: close the live version of changed keys and of keys not staged (a snapshot) or
/// staged as deleted (change events) (`ds_surf_batch_out = B - 1`), then insert a live version (`B`, [`LIVE`]) for every staged key without
/// one: new keys, changed keys and keys deleted earlier and back now. Returns the statements in the order
/// close changed, close deleted, insert.
fn forensic_sql(stream: &Stream, dataset: &Dataset, batch: i32) -> [String; 3] {
    let upsert = UPSERT;
    let merge = stream.table(&dataset.merge);
    let staging = stream.table(&dataset.staging);
    let source = staged(stream, dataset, batch);
    let before = batch - 1;
    [
        format!(
            "UPDATE {merge} AS m SET ds_surf_batch_out = {before} FROM {source} AS s \
             WHERE m.ds_surf_key_hash = s.ds_surf_key_hash AND m.ds_surf_batch_out = {LIVE} \
             AND m.ds_surf_all_hash <> s.ds_surf_all_hash AND {upsert}"
        ),
        if stream.watermark.is_some() {
            format!("UPDATE {merge} SET ds_surf_batch_out = {before} WHERE false")
        } else if stream.lands() {
            format!(
                "UPDATE {merge} AS m SET ds_surf_batch_out = {before} FROM {source} AS s \
                 WHERE m.ds_surf_key_hash = s.ds_surf_key_hash AND m.ds_surf_batch_out = {LIVE} \
                 AND s.ds_surf_op = 'd'"
            )
        } else {
            format!(
                "UPDATE {merge} AS m SET ds_surf_batch_out = {before} WHERE m.ds_surf_batch_out = {LIVE} \
                 AND NOT EXISTS (SELECT 1 FROM {staging} AS s WHERE s.ds_surf_batch_id = {batch} \
                 AND s.ds_surf_key_hash = m.ds_surf_key_hash)"
            )
        },
        format!(
            "INSERT INTO {merge} ({cols}, ds_surf_key_hash, ds_surf_all_hash, ds_surf_batch_in, ds_surf_batch_out) \
             SELECT {scols}, s.ds_surf_key_hash, s.ds_surf_all_hash, {batch}, {LIVE} FROM {source} AS s \
             WHERE {upsert} AND NOT EXISTS (SELECT 1 FROM {merge} AS m WHERE m.ds_surf_key_hash = s.ds_surf_key_hash \
             AND m.ds_surf_batch_out = {LIVE})",
            cols = list(&dataset.columns, ""),
            scols = list(&dataset.columns, "s."),
        ),
    ]
}
