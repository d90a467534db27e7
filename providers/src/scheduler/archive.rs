//! Batch archives (issue 9): a data platform with an `archive_bucket` writes each committed batch's staged
//! rows to its object store, and `ds rebuild` recreates the merge tables from the archive alone.
//!
//! Per batch `B` and dataset, under `<data platform>/<store>/<dataset>/batch=<B>/`:
//! - `rows.jsonl.gz`: the dataset's staging rows of `B` (every column, hashes, batch id and op), one
//!   `row_to_json` object a line, gzip-compressed;
//! - `manifest.json`, written last (a batch without one is not archived): the batch, the dataset, the row
//!   count and the SHA-256 of `rows.jsonl.gz`.
//!
//! A batch is archived once every dataset's objects are written; then `ds_batch_metrics.archived_at` is set.
//! Staging pruning removes archived batches only, so a failed archive (the batch stays committed) is
//! retried by the next run, from staging. A rebuild truncates the merge tables and replays every archived
//! batch in order through the engine's merge statements, in one transaction.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use aws_sdk_s3::Client;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::engine::{EngineError, Stream, StreamLock, merge_sql, pg, prune_staging};
use crate::live::Ctx;

/// Where an archiving data platform's batches go: its object store and bucket (the job's `archive`).
#[derive(Debug, Clone, Deserialize)]
pub struct Archive {
    /// The S3 endpoint.
    pub endpoint: String,
    /// The region.
    pub region: String,
    /// The credential name of the access key.
    pub credential: String,
    /// The bucket.
    pub bucket: String,
}

/// A batch's manifest, per dataset.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// The batch id.
    pub batch: i32,
    /// The stream (its key in the control tables).
    pub stream: String,
    /// The dataset.
    pub dataset: String,
    /// Rows in `rows.jsonl.gz`.
    pub rows: u64,
    /// The SHA-256 (hex) of `rows.jsonl.gz`.
    pub sha256: String,
    /// When it was written (the merge database's clock).
    pub created_at: String,
}

/// What a rebuild did.
#[derive(Debug, Clone, PartialEq)]
pub struct Rebuilt {
    /// `<data platform>.<stream>`.
    pub stream: String,
    /// Batches replayed.
    pub batches: u32,
    /// Rows replayed (staged rows read from the archive).
    pub rows: u64,
}

impl Archive {
    fn client(&self, ctx: &Ctx) -> Result<Client, String> {
        let credential = ctx
            .credentials
            .resolve(&self.credential)
            .map_err(|e| format!("the archive's credential: {e}"))?;
        Ok(crate::s3::live::client(
            &self.endpoint,
            &self.region,
            &credential.user,
            credential.password.expose(),
        ))
    }
}

/// `<data platform>/<store>/<dataset>/`.
fn prefix(stream: &Stream, dataset: &str) -> String {
    format!("{}/{}/{}/", stream.schema, stream.store, dataset)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Archives every committed batch of `stream` that is not archived yet, oldest first; returns how many.
pub(super) async fn archive_pending(
    ctx: &Ctx,
    stream: &Stream,
    archive: &Archive,
    address: &str,
) -> Result<u32, String> {
    let client = archive.client(ctx)?;
    let db = ctx
        .postgres
        .lease(ctx, &stream.merge, address)
        .await
        .map_err(|e| e.to_string())?;
    let metrics = stream.table("ds_batch_metrics");
    let batches: Vec<i32> = db
        .query(
            &format!(
                "SELECT batch_id FROM {metrics} WHERE stream = $1 AND state = 'committed' \
                 AND archived_at IS NULL ORDER BY batch_id"
            ),
            &[&stream.stream],
        )
        .await
        .map_err(|e| pg(&e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut done = 0;
    for batch in batches {
        let created_at: String = db
            .query_one("SELECT to_json(now())::text", &[])
            .await
            .map_err(|e| pg(&e))?
            .get(0);
        for dataset in &stream.datasets {
            let rows = db
                .query(
                    &format!(
                        "SELECT row_to_json(s)::text FROM {} AS s WHERE ds_surf_batch_id = $1",
                        stream.table(&dataset.staging)
                    ),
                    &[&batch],
                )
                .await
                .map_err(|e| format!("dataset {}: reading staging: {}", dataset.name, pg(&e)))?;
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            for row in &rows {
                let line: &str = row.get(0);
                gz.write_all(line.as_bytes())
                    .and_then(|_| gz.write_all(b"\n"))
                    .map_err(|e| e.to_string())?;
            }
            let gz = gz.finish().map_err(|e| e.to_string())?;
            let manifest = Manifest {
                batch,
                stream: stream.stream.clone(),
                dataset: dataset.name.clone(),
                rows: rows.len() as u64,
                sha256: hex(&Sha256::digest(&gz)),
                created_at: created_at.trim_matches('"').to_string(),
            };
            let dir = format!("{}batch={batch}/", prefix(stream, &dataset.name));
            let put = |key: String, body: Vec<u8>| {
                client
                    .put_object()
                    .bucket(&archive.bucket)
                    .key(key)
                    .body(ByteStream::from(body))
                    .send()
            };
            put(format!("{dir}rows.jsonl.gz"), gz).await.map_err(|e| {
                format!(
                    "writing s3://{}/{dir}rows.jsonl.gz: {}",
                    archive.bucket,
                    DisplayErrorContext(&e)
                )
            })?;
            let body = serde_json::to_vec_pretty(&manifest).map_err(|e| e.to_string())?;
            put(format!("{dir}manifest.json"), body)
                .await
                .map_err(|e| {
                    format!(
                        "writing s3://{}/{dir}manifest.json: {}",
                        archive.bucket,
                        DisplayErrorContext(&e)
                    )
                })?;
        }
        db.execute(
            &format!(
                "UPDATE {metrics} SET archived_at = now() WHERE stream = $1 AND batch_id = $2"
            ),
            &[&stream.stream, &batch],
        )
        .await
        .map_err(|e| pg(&e))?;
        done += 1;
    }
    Ok(done)
}

async fn get(client: &Client, bucket: &str, key: &str) -> Result<Vec<u8>, String> {
    let out = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| format!("reading s3://{bucket}/{key}: {}", DisplayErrorContext(&e)))?;
    let body = out
        .body
        .collect()
        .await
        .map_err(|e| format!("reading s3://{bucket}/{key}: {e}"))?;
    Ok(body.into_bytes().to_vec())
}

/// The manifests under `prefix`, by batch.
async fn manifests(
    client: &Client,
    bucket: &str,
    prefix: &str,
) -> Result<BTreeMap<i32, String>, String> {
    let mut keys = BTreeMap::new();
    let mut token = None;
    loop {
        let out = client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_continuation_token(token)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "listing s3://{bucket}/{prefix}: {}",
                    DisplayErrorContext(&e)
                )
            })?;
        for object in out.contents() {
            let Some(key) = object.key() else { continue };
            let Some(dir) = key.strip_suffix("/manifest.json") else {
                continue;
            };
            if let Some(batch) = dir
                .rsplit('/')
                .next()
                .and_then(|d| d.strip_prefix("batch="))
                .and_then(|b| b.parse().ok())
            {
                keys.insert(batch, dir.to_string());
            }
        }
        token = out.next_continuation_token().map(str::to_string);
        if token.is_none() {
            return Ok(keys);
        }
    }
}

/// Recreates the merge tables of the stream a `scheduler_job`'s attributes describe from its archive alone:
/// every manifest read and its rows verified (count and checksum) first, then, in one transaction, the
/// merge tables truncated and each archived batch loaded into staging and merged as the engine merges it.
pub async fn rebuild(ctx: &Ctx, job: &Value) -> Result<Rebuilt, EngineError> {
    let stream = Stream::of(job, None).map_err(|message| EngineError {
        stream: "(job)".into(),
        message,
    })?;
    let Some(archive) = &stream.archive else {
        return Err(stream.error("its data platform has no `archive_bucket`: there is no archive"));
    };
    let client = archive.client(ctx).map_err(|e| stream.error(e))?;
    // Per batch, per dataset (index): the archived rows as one JSON array.
    let mut batches: BTreeMap<i32, Vec<(usize, String)>> = BTreeMap::new();
    let mut rows = 0u64;
    for (i, dataset) in stream.datasets.iter().enumerate() {
        let at = |m: String| stream.error(format!("dataset {}: {m}", dataset.name));
        let dirs = manifests(&client, &archive.bucket, &prefix(&stream, &dataset.name))
            .await
            .map_err(at)?;
        for (batch, dir) in dirs {
            let manifest: Manifest = serde_json::from_slice(
                &get(&client, &archive.bucket, &format!("{dir}/manifest.json"))
                    .await
                    .map_err(at)?,
            )
            .map_err(|e| at(format!("{dir}/manifest.json is not a manifest: {e}")))?;
            let gz = get(&client, &archive.bucket, &format!("{dir}/rows.jsonl.gz"))
                .await
                .map_err(at)?;
            let sum = hex(&Sha256::digest(&gz));
            if sum != manifest.sha256 {
                return Err(at(format!(
                    "{dir}/rows.jsonl.gz does not match its manifest (SHA-256 {sum}, the manifest says {})",
                    manifest.sha256
                )));
            }
            let mut text = String::new();
            flate2::read::GzDecoder::new(gz.as_slice())
                .read_to_string(&mut text)
                .map_err(|e| at(format!("{dir}/rows.jsonl.gz: {e}")))?;
            let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
            if lines.len() as u64 != manifest.rows {
                return Err(at(format!(
                    "{dir}/rows.jsonl.gz holds {} rows, its manifest says {}",
                    lines.len(),
                    manifest.rows
                )));
            }
            rows += manifest.rows;
            batches
                .entry(batch)
                .or_default()
                .push((i, format!("[{}]", lines.join(","))));
        }
    }
    let address = format!("scheduler_job.{}", stream.label);
    let mut lock = StreamLock::take(ctx, &stream, &address).await?;
    let result = async {
        let tx = lock.conn.transaction().await.map_err(|e| stream.error(pg(&e)))?;
        for dataset in &stream.datasets {
            tx.batch_execute(&format!("TRUNCATE {}", stream.table(&dataset.merge)))
                .await
                .map_err(|e| stream.error(pg(&e)))?;
        }
        for (batch, datasets) in &batches {
            for (i, json) in datasets {
                let dataset = &stream.datasets[*i];
                let at = |m: String| {
                    stream.error(format!("dataset {} batch {batch}: {m}", dataset.name))
                };
                let staging = stream.table(&dataset.staging);
                tx.execute(
                    &format!("DELETE FROM {staging} WHERE ds_surf_batch_id = $1"),
                    &[batch],
                )
                .await
                .map_err(|e| at(pg(&e)))?;
                tx.execute(
                    &format!(
                        "INSERT INTO {staging} SELECT * FROM json_populate_recordset(NULL::{staging}, $1::text::json)"
                    ),
                    &[json],
                )
                .await
                .map_err(|e| at(format!("loading the archived rows: {}", pg(&e))))?;
                for statement in &merge_sql(&stream, dataset, *batch) {
                    tx.execute(statement.as_str(), &[])
                        .await
                        .map_err(|e| at(format!("merging: {}", pg(&e))))?;
                }
            }
        }
        // Staging keeps the last `staging_batches_to_keep` batches, as after a commit (every replayed
        // batch came from the archive).
        if let Some(last) = batches.keys().next_back() {
            prune_staging(&tx, &stream, *last, false).await?;
        }
        tx.commit().await.map_err(|e| stream.error(pg(&e)))
    }
    .await;
    lock.release().await;
    result?;
    Ok(Rebuilt {
        stream: stream.label.clone(),
        batches: batches.len() as u32,
        rows,
    })
}
