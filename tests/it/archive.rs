//! Batch archives (issue 9) against the stack's PostgreSQL and MinIO: a forensic data platform with an
//! `archive_bucket` archives every committed batch (rows and a manifest); a batch whose archive failed
//! stays committed and is archived by the next run; staging pruning keeps un-archived batches; `ds rebuild`
//! recreates the merge table from the archive alone, row for row.

use std::path::PathBuf;
use std::process::{Command, Output};

use providers::s3::sdk;
use tests::{Postgres, S3, TestDatabase};

const PRODUCTS: &str = "CREATE TABLE public.products (sku varchar(32) PRIMARY KEY, name varchar(200) NOT NULL, \
     price numeric(10,2) NOT NULL, currency char(3) NOT NULL, in_stock integer NOT NULL, updated_at timestamp)";

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
    s3: &'static S3,
    bucket: String,
    client: sdk::Client,
    runtime: tokio::runtime::Runtime,
}

impl Drop for Case {
    fn drop(&mut self) {
        let (client, bucket) = (&self.client, &self.bucket);
        self.runtime.block_on(async {
            loop {
                let Ok(list) = client.list_objects_v2().bucket(bucket).send().await else {
                    break;
                };
                if list.contents().is_empty() {
                    break;
                }
                for object in list.contents() {
                    if let Some(key) = object.key() {
                        let _ = client.delete_object().bucket(bucket).key(key).send().await;
                    }
                }
            }
            let _ = client.delete_bucket().bucket(bucket).send().await;
        });
        let _ = self.merge.pg.psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.merge.name),
        );
        self.merge.pg.drop_workspace_roles(&self.tag);
    }
}

impl Case {
    fn new(pg: &'static Postgres, s3: &'static S3, short: &str) -> Case {
        let tag = format!("{short}{}", std::process::id());
        let bucket = format!("ds-test-{short}-{}", std::process::id());
        let merge = pg.database(&format!("{tag}m"));
        let source = pg.database(&format!("{tag}s"));
        let tmp = tempfile::tempdir().unwrap();
        let model = tmp.path().join("model");
        tests::copy_quickstart(&model, |text| {
            let text = tests::quickstart_source_db(
                tests::quickstart_merge_db(text, pg, &merge.name),
                pg,
                &source.name,
            );
            tests::quickstart_workspaces(text, &tag)
                .replace(
                    "bucket \"ds-archive\" {\n      versioning = true\n    }",
                    &format!("bucket \"{bucket}\" {{}}"),
                )
                // Staging keeps one batch: the older ones are in the archive only.
                .replace(
                    "staging_batches_to_keep = 5\n    archive_bucket          = \"ds-archive\"",
                    &format!(
                        "staging_batches_to_keep = 1\n    archive_bucket          = \"{bucket}\""
                    ),
                )
                .replace("http://127.0.0.1:9000", &s3.endpoint)
        });
        let ecosystem = std::fs::read_to_string(model.join("ecosystem.ds.hcl")).unwrap();
        assert!(
            ecosystem.contains(&format!("archive_bucket          = \"{bucket}\"")),
            "the quickstart's archive_bucket moved"
        );
        source.sql(PRODUCTS);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client =
            providers::s3::live::client(&s3.endpoint, &s3.region, &s3.access_key, &s3.secret_key);
        let case = Case {
            state: tmp.path().join("state.json"),
            _tmp: tmp,
            model,
            merge,
            source,
            tag,
            s3,
            bucket,
            client,
            runtime,
        };
        case.apply();
        case
    }

    fn apply(&self) {
        let bucket = format!("s3_bucket.{}", self.bucket);
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

    /// `ds merge run zero_forensic product_db`: stdout and stderr.
    fn batch(&self, s3_keys: bool) -> (String, String) {
        let out = self.ds(&["merge", "run", "zero_forensic", "product_db"], s3_keys);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
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

    fn object(&self, key: &str) -> Option<Vec<u8>> {
        self.runtime.block_on(async {
            let out = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
                .ok()?;
            Some(out.body.collect().await.ok()?.into_bytes().to_vec())
        })
    }

    fn put(&self, key: &str, body: Vec<u8>) {
        self.runtime.block_on(async {
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .body(sdk::primitives::ByteStream::from(body))
                .send()
                .await
                .unwrap();
        });
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
    let case = Case::new(pg, s3, "arch");

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

    // The merge table (and staging) lost; rebuilt from the archive, row for row.
    let before = case.merge.sql(MERGE_ROWS);
    assert_eq!(before.lines().count(), 7, "{before}");
    case.merge.sql(
        "TRUNCATE zero_forensic.product_db__products__merge, zero_forensic.product_db__products__staging",
    );
    let out = case.ds(&["rebuild", "zero_forensic", "product_db"], true);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "zero_forensic.product_db: replayed 4 batches, 10 rows"
    );
    assert_eq!(case.merge.sql(MERGE_ROWS), before);

    // A batch that continues after the rebuild merges onto it as before.
    case.source_is(&[("4", "zoe"), ("5", "ann")]);
    let (out, _) = case.batch(true);
    assert!(
        out.ends_with("2 staged, 1 inserted, 0 updated, 0 deleted"),
        "{out}"
    );

    // An archive that does not match its manifest is refused; the merge table stays as it was.
    let before = case.merge.sql(MERGE_ROWS);
    let key = "zero_forensic/product_db/products/batch=3/rows.jsonl.gz";
    let mut gz = case.object(key).unwrap();
    let last = gz.len() - 1;
    gz[last] ^= 1;
    case.put(key, gz);
    let out = case.ds(&["rebuild", "zero_forensic", "product_db"], true);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("does not match its manifest"),
        "{}",
        text(&out)
    );
    assert_eq!(case.merge.sql(MERGE_ROWS), before);
}
