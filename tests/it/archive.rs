//! Batch archives (issue 9) against the stack's PostgreSQL and MinIO: a forensic data platform with an
//! `archive_bucket` archives every committed batch (rows and a manifest); a batch whose archive failed
//! stays committed and is archived by the next run; staging pruning keeps un-archived batches; `ds rebuild`
//! recreates the merge table from the archive alone, row for row.

use std::path::PathBuf;
use std::process::{Command, Output};

use tests::{Postgres, S3, TestBucket, TestDatabase};

/// Every row of the merge table, every column, in a stable order.
const MERGE_ROWS: &str = "SELECT coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '') \
     FROM zero_forensic.product_db__products__merge AS t";

struct Case {
    _tmp: tempfile::TempDir,
    model: PathBuf,
    state: PathBuf,
    merge: TestDatabase,
    source: TestDatabase,
    tag: String,
    s3: S3,
    bucket: TestBucket,
}

impl std::ops::Deref for Case {
    type Target = TestBucket;
    fn deref(&self) -> &TestBucket {
        &self.bucket
    }
}

impl Drop for Case {
    fn drop(&mut self) {
        self.merge.drop_with_workspace_roles(&self.tag);
    }
}

impl Case {
    /// A case whose forensic data platform archives to its bucket from the start, or (`archive` false)
    /// only after `enable_archive`.
    fn new(pg: &'static Postgres, s3: &S3, short: &str, archive: bool) -> Case {
        let tag = format!("{short}{}", std::process::id());
        let bucket = format!("ds-test-{short}-{}", std::process::id());
        let merge = pg.database(&format!("{tag}m"));
        let source = pg.database(&format!("{tag}s"));
        let tmp = tempfile::tempdir().unwrap();
        let model = tmp.path().join("model");
        tests::copy_quickstart(&model, |text| {
            tests::quickstart_for(text, pg, &merge.name, &source.name, &tag)
                .replace(
                    "bucket \"ds-archive\" {\n      versioning = true\n    }",
                    &format!("bucket \"{bucket}\" {{}}"),
                )
                // Staging keeps one batch: the older ones are in the archive only.
                .replace(
                    "staging_batches_to_keep = 5\n    archive_bucket          = \"ds-archive\"",
                    &format!(
                        "staging_batches_to_keep = 1\n    {}archive_bucket          = \"{bucket}\"",
                        if archive { "" } else { "# " }
                    ),
                )
                .replace("http://127.0.0.1:9000", &s3.endpoint)
        });
        let ecosystem = std::fs::read_to_string(model.join("ecosystem.ds.hcl")).unwrap();
        assert!(
            ecosystem.contains(&format!("archive_bucket          = \"{bucket}\"\n")),
            "the quickstart's archive_bucket moved"
        );
        source.sql(tests::PRODUCTS_TABLE);
        let case = Case {
            state: tmp.path().join("state.json"),
            _tmp: tmp,
            model,
            merge,
            source,
            tag,
            s3: s3.clone(),
            bucket: TestBucket::new(s3, bucket, false),
        };
        case.apply();
        case
    }

    fn apply(&self) {
        let bucket = format!("s3_bucket.{}", self.name);
        let mut apply = vec!["apply", "--auto-approve"];
        for kind in [
            "postgres_schema",
            "postgres_table",
            "postgres_view",
            "postgres_role",
            "postgres_grant",
            "scheduler_job",
            bucket.as_str(),
        ] {
            apply.extend(["--target", kind]);
        }
        apply.extend(["--state", self.state.to_str().unwrap()]);
        let out = self.ds(&apply, true);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }

    /// The data platform gets its `archive_bucket` (applied).
    fn enable_archive(&self) {
        let path = self.model.join("ecosystem.ds.hcl");
        let text = std::fs::read_to_string(&path).unwrap();
        let line = format!("# archive_bucket          = \"{}\"", self.name);
        assert!(text.contains(&line));
        std::fs::write(&path, text.replace(&line, &line[2..])).unwrap();
        self.apply();
    }

    /// `ds <args>`; with `s3_keys` false the object store's credential is missing.
    fn ds(&self, args: &[&str], s3_keys: bool) -> Output {
        let pg = self.merge.pg;
        let mut command = Command::new(tests::ds_binary());
        command
            .args(args)
            .args(["-C", self.model.to_str().unwrap()])
            .env("NO_COLOR", "1")
            .env("MERGE_RW_USER", &pg.user)
            .env("MERGE_RW_PASSWORD", &pg.password)
            .env("SHOP_DB_USER", &pg.user)
            .env("SHOP_DB_PASSWORD", &pg.password)
            .env_remove("OBJECT_STORE_USER")
            .env_remove("OBJECT_STORE_PASSWORD");
        if s3_keys {
            command
                .env("OBJECT_STORE_USER", &self.s3.access_key)
                .env("OBJECT_STORE_PASSWORD", &self.s3.secret_key);
        }
        command.output().expect("ds runs")
    }

    /// `ds rebuild [--dry-run] zero_forensic product_db`.
    fn rebuild(&self, dry_run: bool) -> Output {
        let mut args = vec!["rebuild", "zero_forensic", "product_db"];
        if dry_run {
            args.insert(1, "--dry-run");
        }
        self.ds(&args, true)
    }

    /// `ds merge run zero_forensic product_db`: stdout and stderr. It exits 0, or 1 when the batch committed
    /// but could not be archived (`s3_keys` false: the object store's credential is missing).
    fn batch(&self, s3_keys: bool) -> (String, String) {
        let out = self.ds(&["merge", "run", "zero_forensic", "product_db"], s3_keys);
        assert_eq!(
            out.status.code(),
            Some(if s3_keys { 0 } else { 1 }),
            "{}",
            text(&out)
        );
        (
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        )
    }

    /// The source table becomes exactly `rows` (`sku, name` as SQL values).
    fn source_is(&self, rows: &[(&str, &str)]) {
        let mut sql = "DELETE FROM products;".to_string();
        for (sku, name) in rows {
            sql.push_str(&format!(
                "INSERT INTO products VALUES ('{sku}', '{name}', 1.50, 'EUR', 3, '2026-01-02 03:04:05');"
            ));
        }
        self.source.sql(&sql);
    }

    fn manifest(&self, batch: i32) -> serde_json::Value {
        let key = format!("zero_forensic/product_db/products/batch={batch}/manifest.json");
        let body = self
            .object(&key)
            .unwrap_or_else(|| panic!("{key} is missing"));
        serde_json::from_slice(&body).unwrap()
    }
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn batches_are_archived_and_the_merge_table_is_rebuilt_from_the_archive_alone() {
    let Some(pg) = tests::postgres() else { return };
    let Some(s3) = tests::s3() else { return };
    let case = Case::new(pg, s3, "arch", true);

    // Batch 1: three rows.
    case.source_is(&[("1", "billy"), ("2", "laura"), ("3", "mary")]);
    let (out, err) = case.batch(true);
    assert!(out.contains("batch 1 committed"), "{out}");
    assert!(err.contains("archived 1 batch"), "{err}");
    // Batch 2 (its archive fails: no key for the object store): an update and a delete.
    case.source_is(&[("1", "william"), ("2", "laura")]);
    let (out, err) = case.batch(false);
    assert!(
        out.ends_with("2 staged, 0 inserted, 1 updated, 1 deleted"),
        "{out}"
    );
    assert!(err.contains("committed but not archived"), "{err}");
    assert!(
        case.object("zero_forensic/product_db/products/batch=2/manifest.json")
            .is_none()
    );
    // Batch 3 archives batch 2 too: a key back, a new one, an update.
    case.source_is(&[
        ("1", "william"),
        ("2", "laura2"),
        ("3", "mary"),
        ("4", "zoe"),
    ]);
    let (out, err) = case.batch(true);
    assert!(
        out.ends_with("4 staged, 2 inserted, 1 updated, 0 deleted"),
        "{out}"
    );
    assert!(err.contains("archived 2 batch"), "{err}");
    // Batch 4: everything but one key deleted.
    case.source_is(&[("4", "zoe")]);
    let (out, err) = case.batch(true);
    assert!(
        out.ends_with("1 staged, 0 inserted, 0 updated, 3 deleted"),
        "{out}"
    );
    assert!(err.contains("archived 1 batch"), "{err}");

    // Every batch archived, with its row count and checksum; staging keeps the last batch only.
    for (batch, rows) in [(1, 3), (2, 2), (3, 4), (4, 1)] {
        let manifest = case.manifest(batch);
        assert_eq!(manifest["rows"], rows, "{manifest}");
        assert_eq!(manifest["batch"], batch, "{manifest}");
        assert_eq!(manifest["dataset"], "products", "{manifest}");
        let gz = case
            .object(&format!(
                "zero_forensic/product_db/products/batch={batch}/rows.jsonl.gz"
            ))
            .unwrap();
        use sha2::Digest;
        let sum: String = sha2::Sha256::digest(&gz)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(manifest["sha256"], sum.as_str());
    }
    assert_eq!(
        case.merge.sql(
            "SELECT string_agg(DISTINCT ds_surf_batch_id::text, ',') FROM zero_forensic.product_db__products__staging"
        ),
        "4"
    );
    assert_eq!(
        case.merge.sql(
            "SELECT count(*) FROM zero_forensic.ds_batch_metrics WHERE archived_at IS NOT NULL"
        ),
        "4"
    );

    // The merge table, staging and the control rows lost (a new merge database); `ds apply` makes the
    // tables again and the rebuild fills them from the archive, row for row, with the batch counter and
    // metrics back.
    let before = case.merge.sql(MERGE_ROWS);
    assert_eq!(before.lines().count(), 7, "{before}");
    let metrics = "SELECT string_agg(concat_ws(':', batch_id, state, rows_inserted, rows_updated, rows_deleted, \
         committed_at IS NOT NULL, archived_at IS NOT NULL), ',' ORDER BY batch_id) FROM zero_forensic.ds_batch_metrics";
    let metrics_before = case.merge.sql(metrics);
    case.merge.sql(
        "DROP TABLE zero_forensic.product_db__products__merge CASCADE; \
         TRUNCATE zero_forensic.product_db__products__staging, zero_forensic.ds_batch_counter, \
         zero_forensic.ds_batch_metrics",
    );
    case.apply();
    assert_eq!(case.merge.sql(MERGE_ROWS), "");
    // A dry run checks the archive and says what a rebuild would do, changing nothing.
    let out = case.rebuild(true);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "zero_forensic.product_db: the archive is whole: a rebuild would replay 4 batches, 10 rows, up to batch 4"
    );
    assert_eq!(case.merge.sql(MERGE_ROWS), "");
    let out = case.rebuild(false);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "zero_forensic.product_db: replayed 4 batches, 10 rows; the merge tables are at batch 4"
    );
    assert_eq!(case.merge.sql(MERGE_ROWS), before);
    assert_eq!(case.merge.sql(metrics), metrics_before);
    assert_eq!(
        case.merge
            .sql("SELECT current_batch FROM zero_forensic.ds_batch_counter"),
        "4"
    );

    // A batch that continues after the rebuild merges onto it as before, as batch 5.
    case.source_is(&[("4", "zoe"), ("5", "ann")]);
    let (out, _) = case.batch(true);
    assert!(
        out.contains("batch 5 committed")
            && out.ends_with("2 staged, 1 inserted, 0 updated, 0 deleted"),
        "{out}"
    );

    // An archive that does not match its manifest is refused; the merge table stays as it was.
    let before = case.merge.sql(MERGE_ROWS);
    let key = "zero_forensic/product_db/products/batch=3/rows.jsonl.gz";
    let mut gz = case.object(key).unwrap();
    let last = gz.len() - 1;
    gz[last] ^= 1;
    case.put(key, gz);
    let out = case.rebuild(false);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("does not match its manifest"),
        "{}",
        text(&out)
    );
    assert_eq!(case.merge.sql(MERGE_ROWS), before);

    // An archive that lacks a batch is refused before anything is read into the database.
    assert!(case.delete("zero_forensic/product_db/products/batch=2/manifest.json"));
    let out = case.rebuild(false);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("lacks batch 2"), "{}", text(&out));
    assert_eq!(case.merge.sql(MERGE_ROWS), before);
    let out = case.rebuild(true);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("cannot be rebuilt from") && text(&out).contains("lacks batch 2"),
        "{}",
        text(&out)
    );
}

#[test]
fn an_archive_turned_on_late_begins_with_a_base_and_rebuilds_from_it() {
    let Some(pg) = tests::postgres() else { return };
    let Some(s3) = tests::s3() else { return };
    let case = Case::new(pg, s3, "late", false);

    // Three batches without an archive: staging keeps the last one only.
    case.source_is(&[("1", "billy"), ("2", "laura"), ("3", "mary")]);
    case.batch(true);
    case.source_is(&[("1", "william"), ("2", "laura")]);
    case.batch(true);
    case.source_is(&[("1", "william"), ("2", "laura"), ("3", "mary2")]);
    let (out, err) = case.batch(true);
    assert!(out.contains("batch 3 committed"), "{out}");
    assert!(!err.contains("archived"), "{err}");

    // Archiving on: batches 1 and 2 have no staged rows left, so the merge table after batch 4 is the
    // archive's base, standing in for batches 1 to 4.
    case.enable_archive();
    case.source_is(&[("2", "laura"), ("3", "mary2"), ("4", "zoe")]);
    let (out, err) = case.batch(true);
    assert!(out.contains("batch 4 committed"), "{out}");
    assert!(err.contains("archived 4 batch(es)"), "{err}");
    let base = case
        .object("zero_forensic/product_db/products/base=4/manifest.json")
        .expect("a base after batch 4");
    let base: serde_json::Value = serde_json::from_slice(&base).unwrap();
    assert_eq!(base["kind"], "base");
    assert_eq!(
        base["rows"].to_string(),
        case.merge
            .sql("SELECT count(*) FROM zero_forensic.product_db__products__merge")
    );
    for batch in 1..=4 {
        assert!(
            case.object(&format!(
                "zero_forensic/product_db/products/batch={batch}/manifest.json"
            ))
            .is_none()
        );
    }
    // Batch 5 is archived as a batch again.
    case.source_is(&[("3", "mary3"), ("4", "zoe"), ("5", "ann")]);
    let (_, err) = case.batch(true);
    assert!(err.contains("archived 1 batch(es)"), "{err}");
    assert_eq!(case.manifest(5)["kind"], "batch");

    let out = case.rebuild(true);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!(
            "zero_forensic.product_db: the archive is whole: a rebuild would load the base after batch 4 \
             ({} rows), replay 1 batches, 3 rows, up to batch 5",
            base["rows"]
        )
    );
    let before = case.merge.sql(MERGE_ROWS);
    case.merge
        .sql("TRUNCATE zero_forensic.product_db__products__merge");
    let out = case.rebuild(false);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!(
            "zero_forensic.product_db: loaded the base after batch 4 ({} rows), replayed 1 batches, 3 rows; \
             the merge tables are at batch 5",
            base["rows"]
        )
    );
    assert_eq!(case.merge.sql(MERGE_ROWS), before);
}

#[test]
fn a_large_batch_goes_up_in_parts_and_comes_back_whole() {
    let Some(pg) = tests::postgres() else { return };
    let Some(s3) = tests::s3() else { return };
    let case = Case::new(pg, s3, "big", true);
    // 120,000 rows of poorly compressible names: more than one 8 MiB part once gzipped.
    case.source.sql(
        "INSERT INTO products SELECT 'SKU-' || i, md5(i::text) || md5((i + 1)::text) || md5((i + 2)::text), \
         i % 1000, 'EUR', i % 7, NULL FROM generate_series(1, 120000) AS i",
    );
    let (out, err) = case.batch(true);
    assert!(out.contains("120000 staged, 120000 inserted"), "{out}");
    assert!(err.contains("archived 1 batch(es)"), "{err}");
    let key = "zero_forensic/product_db/products/batch=1/rows.jsonl.gz";
    let head = case
        .runtime
        .block_on(case.client.head_object().bucket(&case.name).key(key).send())
        .unwrap();
    assert!(
        head.content_length().unwrap_or(0) > 8 << 20,
        "{:?}",
        head.content_length()
    );
    // A multipart object's ETag ends with its part count.
    let etag = head
        .e_tag()
        .unwrap_or_default()
        .trim_matches('"')
        .to_string();
    assert!(etag.ends_with("-2") || etag.ends_with("-3"), "{etag}");
    assert_eq!(case.manifest(1)["rows"], 120000);

    let digest = "SELECT md5(string_agg(t::text, E'\\n' ORDER BY t::text)) \
         FROM zero_forensic.product_db__products__merge AS t";
    let before = case.merge.sql(digest);
    case.merge
        .sql("TRUNCATE zero_forensic.product_db__products__merge");
    let out = case.rebuild(false);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("replayed 1 batches, 120000 rows"),
        "{}",
        text(&out)
    );
    assert_eq!(case.merge.sql(digest), before);
}

/// The archive's S3 server stopped: the batch commits, the archive write fails with a clear error (exit 1,
/// `archive_failed` and the batch behind in `ds status`), staging keeps the batch; with the server back the
/// next run archives both batches, and a rebuild from the archive is whole.
#[test]
fn an_archive_write_with_the_server_stopped_is_retried_by_the_next_run() {
    let Some(pg) = tests::postgres() else { return };
    let Some(mut own) = tests::OwnS3::start() else {
        return;
    };
    let case = Case::new(pg, &own.s3, "afault", true);
    case.source_is(&[("1", "billy"), ("2", "laura")]);
    let (_, err) = case.batch(true);
    assert!(err.contains("archived 1 batch(es)"), "{err}");

    own.stop();
    case.source_is(&[("1", "william"), ("3", "mary")]);
    let out = case.ds(&["merge", "run", "zero_forensic", "product_db"], true);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("batch 2 committed"), "{stdout}");
    assert!(
        stderr.contains("committed but not archived")
            && stderr.contains(&own.s3.endpoint)
            && stderr.contains("is the S3 server running?"),
        "{stderr}"
    );
    assert!(!stderr.contains(&own.s3.secret_key));
    assert_eq!(
        case.merge.sql(
            "SELECT string_agg(batch_id || ':' || (archived_at IS NOT NULL), ',' ORDER BY batch_id) \
             FROM zero_forensic.ds_batch_metrics"
        ),
        "1:true,2:false"
    );
    // Staging keeps batch 2 (not archived) although it keeps one batch only.
    assert_eq!(
        case.merge.sql(
            "SELECT count(*) FROM zero_forensic.product_db__products__staging WHERE ds_surf_batch_id = 2"
        ),
        "2"
    );
    // The scheduler records it and `ds status` shows it.
    case.merge
        .sql("UPDATE zero_forensic.ds_jobs SET next_run_at = now()");
    case.source_is(&[("1", "william"), ("3", "mary"), ("4", "zoe")]);
    let out = case.ds(&["scheduler", "run", "--once"], true);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("zero_forensic.product_db: batch 3 committed"),
        "{}",
        text(&out)
    );
    let out = case.ds(&["status"], true);
    let status = String::from_utf8_lossy(&out.stdout).to_string();
    let line = status
        .lines()
        .find(|l| l.starts_with("zero_forensic.product_db"))
        .unwrap_or_else(|| panic!("{status}"));
    assert!(
        line.contains("archive_failed") && line.ends_with("2 behind"),
        "{status}"
    );
    assert!(
        status.contains("zero_forensic.product_db: last run's archive failed"),
        "{status}"
    );

    own.resume();
    case.source_is(&[("3", "mary"), ("4", "zoe")]);
    let (out, err) = case.batch(true);
    assert!(out.contains("batch 4 committed"), "{out}");
    assert!(err.contains("archived 3 batch(es)"), "{err}");
    let before = case.merge.sql(MERGE_ROWS);
    case.merge
        .sql("TRUNCATE zero_forensic.product_db__products__merge");
    let out = case.rebuild(false);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(case.merge.sql(MERGE_ROWS), before);
}
