//! Batch archives (issue 9): a data platform with an `archive_bucket` writes each committed batch's staged
//! rows to its object store, and `ds rebuild` recreates the merge tables from the archive alone.
//!
//! Per dataset, under `<data platform>/<store>/<dataset>/`:
//! - `batch=<B>/rows.jsonl.gz`: the dataset's staging rows of batch `B` (every column, hashes, batch id and
//!   op), one `row_to_json` object a line, gzip-compressed; streamed from PostgreSQL into the bucket (one
//!   PUT when it is small, a multipart upload of 8 MiB parts otherwise), never held whole in memory;
//! - `batch=<B>/manifest.json`, written last (a batch without one is not archived): the batch, the
//!   dataset, the row count, the SHA-256 of `rows.jsonl.gz`, and the batch's counts and high watermark
//!   (what `ds_batch_metrics` held, so that a rebuild into a new database can restore it);
//! - `base=<N>/rows.jsonl.gz` and `base=<N>/manifest.json`: a base, the merge table itself as it was
//!   after batch `N`. One is written when committed batches are to be archived whose staged rows are gone
//!   (pruned before the data platform had an archive): it stands in for every batch up to `N`.
//!
//! A batch is archived once every dataset's objects are written; then `ds_batch_metrics.archived_at` is set.
//! Staging pruning removes archived batches only, so a failed archive (the batch stays committed) is
//! retried by the next run, from staging. A rebuild checks that the archive is whole (every batch from the
//! first, or from the newest base, to the last, for every dataset), then, in one transaction, truncates the
//! merge tables, loads the base if there is one, and replays every archived batch in order through the
//! engine's merge statements, each object checked against its manifest (count and checksum) as it is
//! loaded; any fault rolls the whole rebuild back.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use aws_sdk_s3::Client;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use futures_util::SinkExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio_postgres::types::ToSql;

use super::engine::{EngineError, Stream, StreamLock, merge_sql, pg, prune_staging};
use crate::live::Ctx;

/// Compressed bytes a multipart part holds (S3's smallest part but the last is 5 MiB); an object smaller
/// than one part is written with one PUT.
const PART: usize = 8 << 20;

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

/// What an archived directory holds: one batch's staged rows, or a base (the merge table after a batch).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `batch=<B>/`.
    #[default]
    Batch,
    /// `base=<N>/`.
    Base,
}

/// A manifest, per dataset and batch (or base).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// A batch's staged rows or a base.
    #[serde(default)]
    pub kind: Kind,
    /// The batch id (a base: the batch the merge table was at).
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
    /// The batch's row in `ds_batch_metrics` when it was archived.
    #[serde(default)]
    pub metrics: Option<Metrics>,
}

/// What `ds_batch_metrics` said of an archived batch (restored by a rebuild that finds no row for it).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Metrics {
    /// When it committed (JSON timestamp).
    pub committed_at: Option<String>,
    /// Keys inserted, updated, deleted.
    pub rows_inserted: Option<i64>,
    #[allow(missing_docs)]
    pub rows_updated: Option<i64>,
    #[allow(missing_docs)]
    pub rows_deleted: Option<i64>,
    /// sql_watermark: the watermark the batch read up to.
    pub high_watermark: Option<String>,
}

/// What a rebuild did.
#[derive(Debug, Clone, PartialEq)]
pub struct Rebuilt {
    /// `<data platform>.<stream>`.
    pub stream: String,
    /// The base loaded first (the batch it was taken after, and its rows), if the archive has one.
    pub base: Option<(i32, u64)>,
    /// Batches replayed.
    pub batches: u32,
    /// Rows replayed (staged rows read from the archive; a base's not counted).
    pub rows: u64,
    /// The last batch the merge tables now hold.
    pub last: i32,
}

impl Archive {
    fn client(&self, ctx: &Ctx) -> Result<Client, String> {
        ctx.s3
            .get(ctx, &self.endpoint, &self.region, &self.credential)
            .map_err(|e| format!("the archive's credential: {e}"))
    }

    /// One line for a failed call on `key`, naming the bucket and the endpoint (never a key).
    fn failed<E>(&self, call: &str, key: &str, e: &SdkError<E>) -> String
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let (what, _) = state::s3_shared::describe_error(call, e);
        format!(
            "s3://{}/{key} at {}: {what}",
            self.bucket,
            state::s3_shared::redacted(&self.endpoint)
        )
    }
}

/// `<data platform>/<store>/<dataset>/`.
fn prefix(stream: &Stream, dataset: &str) -> String {
    format!("{}/{}/{}/", stream.schema, stream.store, dataset)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An object being written: one PUT at the end when it stays under one part, a multipart upload otherwise.
struct Upload<'a> {
    archive: &'a Archive,
    client: &'a Client,
    key: String,
    id: Option<String>,
    parts: Vec<CompletedPart>,
    sha: Sha256,
}

impl<'a> Upload<'a> {
    fn new(archive: &'a Archive, client: &'a Client, key: String) -> Self {
        Upload {
            archive,
            client,
            key,
            id: None,
            parts: Vec::new(),
            sha: Sha256::new(),
        }
    }

    async fn part(&mut self, body: Vec<u8>) -> Result<(), String> {
        self.sha.update(&body);
        let id = match &self.id {
            Some(id) => id.clone(),
            None => {
                let out = self
                    .client
                    .create_multipart_upload()
                    .bucket(&self.archive.bucket)
                    .key(&self.key)
                    .send()
                    .await
                    .map_err(|e| self.archive.failed("CreateMultipartUpload", &self.key, &e))?;
                let id = out.upload_id().unwrap_or_default().to_string();
                self.id = Some(id.clone());
                id
            }
        };
        let number = self.parts.len() as i32 + 1;
        let out = self
            .client
            .upload_part()
            .bucket(&self.archive.bucket)
            .key(&self.key)
            .upload_id(id)
            .part_number(number)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| self.archive.failed("UploadPart", &self.key, &e))?;
        self.parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(out.e_tag().map(str::to_string))
                .build(),
        );
        Ok(())
    }

    /// Writes the rest; returns the SHA-256 of the whole object.
    async fn finish(&mut self, rest: Vec<u8>) -> Result<String, String> {
        let Some(id) = self.id.clone() else {
            self.sha.update(&rest);
            self.client
                .put_object()
                .bucket(&self.archive.bucket)
                .key(&self.key)
                .body(ByteStream::from(rest))
                .send()
                .await
                .map_err(|e| self.archive.failed("PutObject", &self.key, &e))?;
            return Ok(hex(&self.sha.clone().finalize()));
        };
        if !rest.is_empty() {
            self.part(rest).await?;
        }
        self.client
            .complete_multipart_upload()
            .bucket(&self.archive.bucket)
            .key(&self.key)
            .upload_id(id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(std::mem::take(&mut self.parts)))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| {
                self.archive
                    .failed("CompleteMultipartUpload", &self.key, &e)
            })?;
        self.id = None;
        Ok(hex(&self.sha.clone().finalize()))
    }

    /// Lets an unfinished multipart upload go (best effort: a lifecycle rule cleans up what this misses).
    async fn abort(&self) {
        if let Some(id) = &self.id {
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(&self.archive.bucket)
                .key(&self.key)
                .upload_id(id)
                .send()
                .await;
        }
    }
}

/// Streams `sql`'s rows (one JSON text a row) gzip-compressed into `key`; returns the row count and the
/// object's SHA-256.
async fn upload_rows(
    db: &mut tokio_postgres::Client,
    archive: &Archive,
    client: &Client,
    key: String,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<(u64, String), String> {
    let mut upload = Upload::new(archive, client, key);
    let result = async {
        let reading = |e: tokio_postgres::Error| format!("reading the rows: {}", pg(&e));
        // A portal read 10,000 rows at a time: memory stays bounded whatever the batch's size (a plain
        // query's rows pile up in the client while the upload is slower than the server).
        let tx = db.transaction().await.map_err(reading)?;
        let portal = tx.bind(sql, params).await.map_err(reading)?;
        // The fastest level: archiving runs after every commit; its objects come out about a fifth larger
        // than at the default level (docs/benchmarks.md).
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut count = 0u64;
        let mut rows = tx.query_portal(&portal, 10_000).await.map_err(reading)?;
        while !rows.is_empty() {
            // The next rows are asked for first, so the server reads them while these are compressed.
            let next = tx.query_portal(&portal, 10_000);
            let compress = async {
                for row in &rows {
                    let line: &str = row.get(0);
                    gz.write_all(line.as_bytes())
                        .and_then(|_| gz.write_all(b"\n"))
                        .map_err(|e| e.to_string())?;
                }
                Ok::<_, String>(())
            };
            let (next, compressed) = futures_util::join!(next, compress);
            compressed?;
            count += rows.len() as u64;
            rows = next.map_err(reading)?;
            if gz.get_ref().len() >= PART {
                let part = std::mem::take(gz.get_mut());
                upload.part(part).await?;
            }
        }
        tx.commit().await.map_err(reading)?;
        let rest = gz.finish().map_err(|e| e.to_string())?;
        Ok((count, upload.finish(rest).await?))
    }
    .await;
    if result.is_err() {
        upload.abort().await;
    }
    result
}

/// A committed batch not archived yet.
struct Pending {
    batch: i32,
    metrics: Metrics,
}

/// Writes archived directories of one stream: a dataset's rows (a batch's staged ones, or the merge table
/// for a base), then its manifest.
struct Writer<'a> {
    stream: &'a Stream,
    archive: &'a Archive,
    client: &'a Client,
    created_at: String,
}

impl Writer<'_> {
    async fn write(
        &self,
        db: &mut tokio_postgres::Client,
        kind: Kind,
        batch: i32,
        dataset: &str,
        table: &str,
        metrics: &Metrics,
    ) -> Result<(), String> {
        let at = |m: String| format!("dataset {dataset}: {m}");
        let dir = format!(
            "{}{}={batch}/",
            prefix(self.stream, dataset),
            if kind == Kind::Base { "base" } else { "batch" }
        );
        let (sql, params): (String, &[&(dyn ToSql + Sync)]) = match kind {
            Kind::Batch => (
                format!(
                    "SELECT row_to_json(s)::text FROM {table} AS s WHERE ds_surf_batch_id = $1"
                ),
                &[&batch],
            ),
            Kind::Base => (
                format!("SELECT row_to_json(s)::text FROM {table} AS s"),
                &[],
            ),
        };
        let (rows, sha256) = upload_rows(
            db,
            self.archive,
            self.client,
            format!("{dir}rows.jsonl.gz"),
            &sql,
            params,
        )
        .await
        .map_err(at)?;
        let manifest = Manifest {
            kind,
            batch,
            stream: self.stream.stream.clone(),
            dataset: dataset.to_string(),
            rows,
            sha256,
            created_at: self.created_at.clone(),
            metrics: Some(metrics.clone()),
        };
        let key = format!("{dir}manifest.json");
        let body = serde_json::to_vec_pretty(&manifest).map_err(|e| at(e.to_string()))?;
        self.client
            .put_object()
            .bucket(&self.archive.bucket)
            .key(&key)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| at(self.archive.failed("PutObject", &key, &e)))?;
        Ok(())
    }
}

/// Archives every committed batch of `stream` that is not archived yet, oldest first; returns how many.
/// When some of them have no staged rows left (pruned before the data platform had an archive), a base of
/// the merge tables as they are now (the stream's lock is held: after its newest committed batch) stands
/// in for all of them.
pub(super) async fn archive_pending(
    ctx: &Ctx,
    stream: &Stream,
    archive: &Archive,
    address: &str,
) -> Result<u32, String> {
    let client = archive.client(ctx)?;
    let mut db = ctx
        .postgres
        .lease(ctx, &stream.merge, address)
        .await
        .map_err(|e| e.to_string())?;
    let metrics = stream.table("ds_batch_metrics");
    let pending: Vec<Pending> = db
        .query(
            &format!(
                "SELECT batch_id, to_json(committed_at)::text, rows_inserted, rows_updated, rows_deleted, \
                 high_watermark FROM {metrics} WHERE stream = $1 AND state = 'committed' \
                 AND archived_at IS NULL ORDER BY batch_id"
            ),
            &[&stream.stream],
        )
        .await
        .map_err(|e| pg(&e))?
        .iter()
        .map(|r| Pending {
            batch: r.get(0),
            metrics: Metrics {
                committed_at: r
                    .get::<_, Option<String>>(1)
                    .map(|t| t.trim_matches('"').to_string()),
                rows_inserted: r.get(2),
                rows_updated: r.get(3),
                rows_deleted: r.get(4),
                high_watermark: r.get(5),
            },
        })
        .collect();
    let Some(newest) = pending.last() else {
        return Ok(0);
    };
    let ids: Vec<i32> = pending.iter().map(|p| p.batch).collect();
    let mut staged = BTreeSet::new();
    for dataset in &stream.datasets {
        for row in db
            .query(
                &format!(
                    // One index probe a batch (a batch may hold millions of rows).
                    "SELECT b FROM unnest($1::integer[]) AS b \
                     WHERE EXISTS (SELECT 1 FROM {} WHERE ds_surf_batch_id = b)",
                    stream.table(&dataset.staging)
                ),
                &[&ids],
            )
            .await
            .map_err(|e| format!("dataset {}: reading staging: {}", dataset.name, pg(&e)))?
        {
            staged.insert(row.get::<_, i32>(0));
        }
    }
    let created_at: String = db
        .query_one("SELECT to_json(now())::text", &[])
        .await
        .map_err(|e| pg(&e))?
        .get(0);
    let created_at = created_at.trim_matches('"').to_string();
    let writer = Writer {
        stream,
        archive,
        client: &client,
        created_at,
    };
    if pending.iter().any(|p| !staged.contains(&p.batch)) {
        // The merge tables after the newest committed batch stand in for every pending batch.
        for dataset in &stream.datasets {
            let table = stream.table(&dataset.merge);
            writer
                .write(
                    &mut db,
                    Kind::Base,
                    newest.batch,
                    &dataset.name,
                    &table,
                    &newest.metrics,
                )
                .await?;
        }
        db.execute(
            &format!(
                "UPDATE {metrics} SET archived_at = now() WHERE stream = $1 AND state = 'committed' \
                 AND archived_at IS NULL AND batch_id <= $2"
            ),
            &[&stream.stream, &newest.batch],
        )
        .await
        .map_err(|e| pg(&e))?;
        return Ok(pending.len() as u32);
    }
    for p in &pending {
        for dataset in &stream.datasets {
            let table = stream.table(&dataset.staging);
            writer
                .write(
                    &mut db,
                    Kind::Batch,
                    p.batch,
                    &dataset.name,
                    &table,
                    &p.metrics,
                )
                .await?;
        }
        db.execute(
            &format!(
                "UPDATE {metrics} SET archived_at = now() WHERE stream = $1 AND batch_id = $2"
            ),
            &[&stream.stream, &p.batch],
        )
        .await
        .map_err(|e| pg(&e))?;
    }
    Ok(pending.len() as u32)
}

/// The archived directories of one dataset: its batches and its bases, each `<prefix><kind>=<id>`.
#[derive(Default)]
struct Listing {
    batches: BTreeMap<i32, String>,
    bases: BTreeMap<i32, String>,
}

async fn list(archive: &Archive, client: &Client, prefix: &str) -> Result<Listing, String> {
    let mut listing = Listing::default();
    let mut token = None;
    loop {
        let out = client
            .list_objects_v2()
            .bucket(&archive.bucket)
            .prefix(prefix)
            .set_continuation_token(token)
            .send()
            .await
            .map_err(|e| archive.failed("ListObjectsV2", prefix, &e))?;
        for object in out.contents() {
            let Some(dir) = object.key().and_then(|k| k.strip_suffix("/manifest.json")) else {
                continue;
            };
            let name = dir.rsplit('/').next().unwrap_or_default();
            if let Some(id) = name.strip_prefix("batch=").and_then(|b| b.parse().ok()) {
                listing.batches.insert(id, dir.to_string());
            } else if let Some(id) = name.strip_prefix("base=").and_then(|b| b.parse().ok()) {
                listing.bases.insert(id, dir.to_string());
            }
        }
        token = out.next_continuation_token().map(str::to_string);
        if token.is_none() {
            return Ok(listing);
        }
    }
}

async fn get(archive: &Archive, client: &Client, key: &str) -> Result<Vec<u8>, String> {
    let out = client
        .get_object()
        .bucket(&archive.bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| archive.failed("GetObject", key, &e))?;
    let body = out
        .body
        .collect()
        .await
        .map_err(|e| format!("s3://{}/{key}: reading the body: {e}", archive.bucket))?;
    Ok(body.into_bytes().to_vec())
}

/// One archived directory to load: its manifest and where it goes.
struct Load {
    dataset: usize,
    dir: String,
    manifest: Manifest,
}

/// The replay plan of a stream's archive: the base per dataset (if any), then the batches in order.
struct Plan {
    base: Vec<Load>,
    batches: BTreeMap<i32, Vec<Load>>,
}

impl Plan {
    /// What replaying it does (every object is checked against its manifest as it is loaded, so the
    /// manifests' counts are the rows loaded).
    fn summary(&self, stream: &Stream) -> Rebuilt {
        let rows = |loads: &mut dyn Iterator<Item = &Load>| loads.map(|l| l.manifest.rows).sum();
        let last = self
            .base
            .iter()
            .chain(self.batches.values().flatten())
            .map(|l| l.manifest.batch)
            .max()
            .unwrap_or(0);
        Rebuilt {
            stream: stream.label.clone(),
            base: self
                .base
                .first()
                .map(|l| (l.manifest.batch, rows(&mut self.base.iter()))),
            batches: self.batches.len() as u32,
            rows: rows(&mut self.batches.values().flatten()),
            last,
        }
    }
}

/// Reads what the archive holds for `stream` (manifests only) and checks that it is whole.
async fn plan(stream: &Stream, archive: &Archive, client: &Client) -> Result<Plan, String> {
    let mut listings = Vec::new();
    for dataset in &stream.datasets {
        listings.push(
            list(archive, client, &prefix(stream, &dataset.name))
                .await
                .map_err(|e| format!("dataset {}: {e}", dataset.name))?,
        );
    }
    let where_ = format!(
        "s3://{}/{}/{}/",
        archive.bucket, stream.schema, stream.store
    );
    // The newest base that every dataset has; the replay starts after it.
    let base = listings
        .iter()
        .map(|l| l.bases.keys().copied().collect::<BTreeSet<_>>())
        .reduce(|a, b| a.intersection(&b).copied().collect())
        .and_then(|common| common.last().copied());
    let after = base.unwrap_or(0);
    let ids: BTreeSet<i32> = listings
        .iter()
        .flat_map(|l| l.batches.range(after + 1..).map(|(id, _)| *id))
        .collect();
    if base.is_none() && ids.is_empty() {
        return Err(format!(
            "the archive ({where_}) holds no batch of this stream: nothing to rebuild from"
        ));
    }
    if let Some(first) = ids.first()
        && base.is_none()
        && *first != 1
    {
        return Err(format!(
            "the archive ({where_}) begins at batch {first}: batches 1 to {} are not in it (was the \
             archive_bucket changed?), so the merge tables cannot be recreated from it",
            first - 1
        ));
    }
    for (expected, id) in (after + 1..).zip(&ids) {
        if *id != expected {
            return Err(format!(
                "the archive ({where_}) lacks batch {expected} (it holds batch {} before and {id} after): \
                 a rebuild needs every batch",
                expected - 1
            ));
        }
    }
    let last = ids.last().copied().unwrap_or(after);
    // Every dataset holds every batch from its own first (a dataset added later starts later) to the last.
    for (i, listing) in listings.iter().enumerate() {
        let mine: Vec<i32> = listing
            .batches
            .range(after + 1..)
            .map(|(id, _)| *id)
            .collect();
        if let Some(first) = mine.first()
            && (mine.len() as i32) != last - first + 1
        {
            let missing = (*first..=last).find(|id| !listing.batches.contains_key(id));
            return Err(format!(
                "dataset {}: the archive lacks its batch {} (the other datasets have it)",
                stream.datasets[i].name,
                missing.unwrap_or(last)
            ));
        }
    }
    let manifest = |i: usize, dir: String, kind: Kind, id: i32| {
        let stream_name = &stream.stream;
        async move {
            let key = format!("{dir}/manifest.json");
            let manifest: Manifest = serde_json::from_slice(&get(archive, client, &key).await?)
                .map_err(|e| format!("{key} is not a manifest: {e}"))?;
            if manifest.kind != kind || manifest.batch != id || &manifest.stream != stream_name {
                return Err(format!(
                    "{key} describes {:?} {} of stream {}, not what its path says",
                    manifest.kind, manifest.batch, manifest.stream
                ));
            }
            Ok(Load {
                dataset: i,
                dir,
                manifest,
            })
        }
    };
    let mut plan = Plan {
        base: Vec::new(),
        batches: BTreeMap::new(),
    };
    for (i, listing) in listings.into_iter().enumerate() {
        let at = |m: String| format!("dataset {}: {m}", stream.datasets[i].name);
        if let Some(n) = base {
            let dir = listing.bases[&n].clone();
            plan.base
                .push(manifest(i, dir, Kind::Base, n).await.map_err(at)?);
        }
        for (id, dir) in listing.batches.range(after + 1..) {
            let load = manifest(i, dir.clone(), Kind::Batch, *id)
                .await
                .map_err(at)?;
            plan.batches.entry(*id).or_default().push(load);
        }
    }
    Ok(plan)
}

/// Appends the complete JSON lines of `text` to `buffer` in COPY's text format (a JSON line holds no tab,
/// newline or carriage return, JSON escapes them, so only its backslashes need escaping); returns how many.
fn copy_lines(text: &[u8], buffer: &mut Vec<u8>) -> u64 {
    let mut rows = 0;
    for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        for b in line {
            if *b == b'\\' {
                buffer.push(b'\\');
            }
            buffer.push(*b);
        }
        buffer.push(b'\n');
        rows += 1;
    }
    rows
}

/// Loads one archived directory's rows into `table` (through the session's `ds_rebuild_rows`), streaming:
/// the object is read chunk by chunk, hashed, decompressed and copied as it arrives, and checked against
/// the manifest (SHA-256, row count) before its rows go further; a mismatch is an error (the caller's
/// transaction then leaves everything as it was).
async fn load(
    tx: &tokio_postgres::Transaction<'_>,
    archive: &Archive,
    client: &Client,
    load: &Load,
    table: &str,
) -> Result<(), String> {
    let key = format!("{}/rows.jsonl.gz", load.dir);
    let mut body = client
        .get_object()
        .bucket(&archive.bucket)
        .key(&key)
        .send()
        .await
        .map_err(|e| archive.failed("GetObject", &key, &e))?
        .body;
    let sink = tx
        .copy_in::<_, bytes::Bytes>("COPY ds_rebuild_rows (line) FROM STDIN")
        .await
        .map_err(|e| pg(&e))?;
    futures_util::pin_mut!(sink);
    let mut sha = Sha256::new();
    // Compressed bytes in, decompressed bytes collect in the decoder's Vec until a line is complete.
    let mut gz = flate2::write::GzDecoder::new(Vec::new());
    let mut buffer = Vec::with_capacity(1 << 20);
    let mut rows = 0u64;
    let reading = |e: &dyn std::fmt::Display| format!("s3://{}/{key}: {e}", archive.bucket);
    // A stream that does not decompress is read to its end all the same: a checksum that does not match
    // the manifest is the better message.
    let mut broken = None;
    while let Some(chunk) = body.try_next().await.map_err(|e| reading(&e))? {
        sha.update(&chunk);
        if broken.is_some() {
            continue;
        }
        if let Err(e) = gz.write_all(&chunk) {
            broken = Some(reading(&e));
            continue;
        }
        let out = gz.get_mut();
        if let Some(end) = out.iter().rposition(|b| *b == b'\n') {
            rows += copy_lines(&out[..end], &mut buffer);
            out.drain(..=end);
        }
        if buffer.len() >= 1 << 20 {
            sink.send(bytes::Bytes::from(std::mem::take(&mut buffer)))
                .await
                .map_err(|e| pg(&e))?;
        }
    }
    if broken.is_none() {
        match gz.finish() {
            Ok(rest) => rows += copy_lines(&rest, &mut buffer),
            Err(e) => broken = Some(reading(&e)),
        }
    }
    let sum = hex(&sha.finalize());
    if sum != load.manifest.sha256 {
        return Err(format!(
            "{key} does not match its manifest (SHA-256 {sum}, the manifest says {})",
            load.manifest.sha256
        ));
    }
    if let Some(broken) = broken {
        return Err(broken);
    }
    if !buffer.is_empty() {
        sink.send(bytes::Bytes::from(buffer))
            .await
            .map_err(|e| pg(&e))?;
    }
    sink.finish().await.map_err(|e| pg(&e))?;
    if rows != load.manifest.rows {
        return Err(format!(
            "{key} holds {rows} rows, its manifest says {}",
            load.manifest.rows
        ));
    }
    tx.batch_execute(&format!(
        "INSERT INTO {table} SELECT r.* FROM ds_rebuild_rows AS l, \
         json_populate_record(NULL::{table}, l.line::json) AS r; TRUNCATE ds_rebuild_rows"
    ))
    .await
    .map_err(|e| format!("loading {key}: {}", pg(&e)))
}

/// Recreates the merge tables of the stream a `scheduler_job`'s attributes describe from its archive alone:
/// what the archive holds is read and checked to be whole first, then, in one transaction, the merge
/// tables are truncated, the base loaded (if there is one), and each archived batch loaded into staging and
/// merged as the engine merges it. `ds_batch_counter` and `ds_batch_metrics` get back what they lack (a
/// new merge database), so the next batch follows the last one replayed.
///
/// `progress` hears, after each batch replayed, how many of how many are done.
pub async fn rebuild(
    ctx: &Ctx,
    job: &Value,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Rebuilt, EngineError> {
    let (stream, client, plan) = open(ctx, job).await?;
    let archive = stream.archive.as_ref().expect("open checked it");
    let address = format!("scheduler_job.{}", stream.label);
    let mut lock = StreamLock::take(ctx, &stream, &address).await?;
    let result = async {
        let at = |m: String| stream.error(m);
        let tx = lock.conn.transaction().await.map_err(|e| at(pg(&e)))?;
        tx.batch_execute("CREATE TEMPORARY TABLE ds_rebuild_rows (line text) ON COMMIT DROP")
            .await
            .map_err(|e| at(pg(&e)))?;
        for dataset in &stream.datasets {
            tx.batch_execute(&format!("TRUNCATE {}", stream.table(&dataset.merge)))
                .await
                .map_err(|e| at(format!("dataset {}: {}", dataset.name, pg(&e))))?;
        }
        for l in &plan.base {
            let dataset = &stream.datasets[l.dataset];
            load(&tx, archive, &client, l, &stream.table(&dataset.merge))
                .await
                .map_err(|m| at(format!("dataset {}: the base: {m}", dataset.name)))?;
        }
        for (done, (batch, loads)) in plan.batches.iter().enumerate() {
            for l in loads {
                let dataset = &stream.datasets[l.dataset];
                let at = |m: String| at(format!("dataset {} batch {batch}: {m}", dataset.name));
                let staging = stream.table(&dataset.staging);
                tx.execute(
                    &format!("DELETE FROM {staging} WHERE ds_surf_batch_id = $1"),
                    &[batch],
                )
                .await
                .map_err(|e| at(pg(&e)))?;
                load(&tx, archive, &client, l, &staging).await.map_err(at)?;
                for statement in &merge_sql(&stream, dataset, *batch) {
                    tx.execute(statement.as_str(), &[])
                        .await
                        .map_err(|e| at(format!("merging: {}", pg(&e))))?;
                }
            }
            progress(done + 1, plan.batches.len());
        }
        let rebuilt = plan.summary(&stream);
        let loads = plan.base.iter().chain(plan.batches.values().flatten());
        restore_control(&tx, &stream, loads, rebuilt.last)
            .await
            .map_err(at)?;
        // Staging keeps the last `staging_batches_to_keep` batches, as after a commit (every replayed
        // batch came from the archive).
        prune_staging(&tx, &stream, rebuilt.last, false).await?;
        tx.commit().await.map_err(|e| at(pg(&e)))?;
        Ok(rebuilt)
    }
    .await;
    lock.release().await;
    result
}

/// The stream a `scheduler_job`'s attributes describe, a client for its archive, and the archive's replay
/// plan (checked whole).
async fn open(ctx: &Ctx, job: &Value) -> Result<(Stream, Client, Plan), EngineError> {
    let stream = Stream::of(job, None).map_err(|message| EngineError {
        stream: "(job)".into(),
        message,
    })?;
    let Some(archive) = &stream.archive else {
        return Err(stream.error("its data platform has no `archive_bucket`: there is no archive"));
    };
    let client = archive.client(ctx).map_err(|e| stream.error(e))?;
    let plan = plan(&stream, archive, &client)
        .await
        .map_err(|e| stream.error(e))?;
    Ok((stream, client, plan))
}

/// What a rebuild of the stream a `scheduler_job`'s attributes describe would replay, from its archive's
/// manifests, changing nothing: the error a rebuild would stop at when the archive is not whole.
pub async fn rebuild_plan(ctx: &Ctx, job: &Value) -> Result<Rebuilt, EngineError> {
    let (stream, _, plan) = open(ctx, job).await?;
    Ok(plan.summary(&stream))
}

/// A new merge database has no `ds_batch_counter` or `ds_batch_metrics` rows for the stream: what the
/// manifests say is put back (rows already there are kept), so that the next batch is `last + 1`.
async fn restore_control<'a>(
    tx: &tokio_postgres::Transaction<'_>,
    stream: &Stream,
    loads: impl Iterator<Item = &'a Load>,
    last: i32,
) -> Result<(), String> {
    let counter = stream.table("ds_batch_counter");
    let metrics = stream.table("ds_batch_metrics");
    tx.execute(
        &format!(
            "INSERT INTO {counter} AS c (stream, current_batch) VALUES ($1, $2) ON CONFLICT (stream) \
             DO UPDATE SET current_batch = greatest(c.current_batch, excluded.current_batch)"
        ),
        &[&stream.stream, &last],
    )
    .await
    .map_err(|e| format!("restoring {counter}: {}", pg(&e)))?;
    let mut seen = BTreeSet::new();
    for l in loads {
        if !seen.insert(l.manifest.batch) {
            continue;
        }
        let m = l.manifest.metrics.clone().unwrap_or_default();
        let committed = m
            .committed_at
            .unwrap_or_else(|| l.manifest.created_at.clone());
        tx.execute(
            &format!(
                "INSERT INTO {metrics} (stream, batch_id, state, started_at, committed_at, rows_inserted, \
                 rows_updated, rows_deleted, high_watermark, archived_at) \
                 VALUES ($1, $2, 'committed', $3::text::timestamptz, $3::text::timestamptz, $4, $5, $6, $7, \
                 $8::text::timestamptz) ON CONFLICT (stream, batch_id) DO NOTHING"
            ),
            &[
                &stream.stream,
                &l.manifest.batch,
                &committed,
                &m.rows_inserted,
                &m.rows_updated,
                &m.rows_deleted,
                &m.high_watermark,
                &l.manifest.created_at,
            ],
        )
        .await
        .map_err(|e| format!("restoring {metrics}: {}", pg(&e)))?;
    }
    Ok(())
}
