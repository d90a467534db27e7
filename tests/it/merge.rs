//! `ds merge run` against the stack's real PostgreSQL: sql_snapshot batches merged live (SCD1) and forensic
//! (SCD2), batch by batch, read back through the workspace views; hashes that see through separators and
//! NULLs; a stopped batch resumed; bad source data refused with a message that names what is wrong.

use std::path::PathBuf;
use std::process::{Command, Output};

use tests::{Postgres, TestDatabase};

/// The quickstart's Postgres part applied to a merge database of its own, its `shop` source a database of
/// its own with the `products` table the snapshot store reads.
struct Case {
    _tmp: tempfile::TempDir,
    model: PathBuf,
    merge: TestDatabase,
    source: TestDatabase,
    tag: String,
    /// Extra environment for `ds` (credentials of other sources).
    env: Vec<(String, String)>,
}

impl Drop for Case {
    fn drop(&mut self) {
        self.merge.drop_with_workspace_roles(&self.tag);
    }
}

impl Case {
    fn new(pg: &'static Postgres, short: &str) -> Case {
        Case::edited(pg, short, |text| text)
    }

    /// A case whose model files pass through `edit` first.
    fn edited(pg: &'static Postgres, short: &str, edit: impl Fn(String) -> String) -> Case {
        let tag = format!("{short}{}", std::process::id());
        let merge = pg.database(&format!("{tag}m"));
        let source = pg.database(&format!("{tag}s"));
        let tmp = tempfile::tempdir().unwrap();
        let model = tmp.path().join("model");
        tests::copy_quickstart(&model, |text| {
            edit(tests::quickstart_without_archive(tests::quickstart_for(
                text,
                pg,
                &merge.name,
                &source.name,
                &tag,
            )))
        });
        source.sql(tests::PRODUCTS_TABLE);
        let case = Case {
            _tmp: tmp,
            model,
            merge,
            source,
            tag,
            env: Vec::new(),
        };
        case.apply();
        case
    }

    /// Applies the model's Postgres part.
    fn apply(&self) {
        let case = self;
        let mut apply = vec!["apply", "--auto-approve"];
        for kind in [
            "postgres_schema",
            "postgres_table",
            "postgres_view",
            "postgres_role",
            "postgres_grant",
            "scheduler_job",
        ] {
            apply.extend(["--target", kind]);
        }
        let state = case._tmp.path().join("state.json");
        apply.extend(["--state", state.to_str().unwrap()]);
        let out = case.ds(&apply);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }

    fn ds(&self, args: &[&str]) -> Output {
        let pg = self.merge.pg;
        Command::new(tests::ds_binary())
            .args(args)
            .args(["-C", self.model.to_str().unwrap()])
            .env("NO_COLOR", "1")
            .env("MERGE_RW_USER", &pg.user)
            .env("MERGE_RW_PASSWORD", &pg.password)
            .env("SHOP_DB_USER", &pg.user)
            .env("SHOP_DB_PASSWORD", &pg.password)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("ds runs")
    }

    /// `ds merge run <platform> product_db`; its report line.
    fn batch(&self, platform: &str) -> String {
        self.batch_of(platform, "product_db")
    }

    /// `ds merge run <platform> <store>`; its report line.
    fn batch_of(&self, platform: &str, store: &str) -> String {
        let out = self.ds(&["merge", "run", platform, store]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The source table becomes exactly `rows` (`sku, name, currency, updated_at` as SQL values).
    fn source_is(&self, rows: &[&str]) {
        let mut sql = "DELETE FROM products;".to_string();
        for row in rows {
            let parts: Vec<&str> = row.splitn(4, ',').collect();
            sql.push_str(&format!(
                "INSERT INTO products VALUES ({}, {}, 1.00, {}, 1, {});",
                parts[0], parts[1], parts[2], parts[3]
            ));
        }
        self.source.sql(&sql);
    }

    fn rows(&self, sql: &str) -> String {
        self.merge
            .sql(&sql.replace("{ws}", &format!("ws_analytics_{}", self.tag)))
    }
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// The worked example of the original's forensic merge, batch by batch, in both milestonings.
#[test]
fn snapshot_batches_merge_live_and_forensic_as_the_worked_example_says() {
    let Some(pg) = tests::postgres() else { return };
    let case = Case::new(pg, "wex");
    let history = "SELECT coalesce(string_agg(sku || ' ' || name || ' ' || ds_surf_batch_in || '-' || \
                   CASE WHEN ds_surf_batch_out = 2147483647 THEN 'live' ELSE ds_surf_batch_out::text END, '; ' \
                   ORDER BY sku, ds_surf_batch_in), '') FROM {ws}.audit__product_db__products__history";
    let live = "SELECT coalesce(string_agg(sku || ' ' || name, '; ' ORDER BY sku), '') FROM {ws}.live__product_db__products";
    let audit_live = "SELECT coalesce(string_agg(sku || ' ' || name, '; ' ORDER BY sku), '') FROM {ws}.audit__product_db__products";
    let both = |case: &Case| (case.batch("zero_live"), case.batch("zero_forensic"));

    case.source_is(&["'1','billy','EUR',NULL"]);
    let (l, f) = both(&case);
    assert!(
        l.ends_with("1 staged, 1 inserted, 0 updated, 0 deleted"),
        "{l}"
    );
    assert!(
        f.starts_with("zero_forensic.product_db: batch 1 committed"),
        "{f}"
    );
    assert_eq!(case.rows(history), "1 billy 1-live");

    case.source_is(&["'1','billy','EUR',NULL", "'2','laura','EUR',NULL"]);
    let (l, _) = both(&case);
    assert!(
        l.ends_with("2 staged, 1 inserted, 0 updated, 0 deleted"),
        "{l}"
    );
    assert_eq!(case.rows(history), "1 billy 1-live; 2 laura 2-live");

    case.source_is(&["'1','william','EUR',NULL", "'2','laura','EUR',NULL"]);
    let (l, f) = both(&case);
    assert!(
        l.ends_with("2 staged, 0 inserted, 1 updated, 0 deleted"),
        "{l}"
    );
    assert!(
        f.ends_with("2 staged, 0 inserted, 1 updated, 0 deleted"),
        "{f}"
    );
    assert_eq!(
        case.rows(history),
        "1 billy 1-2; 1 william 3-live; 2 laura 2-live"
    );
    assert_eq!(case.rows(live), "1 william; 2 laura");

    case.source_is(&["'2','laura','EUR',NULL"]);
    let (l, f) = both(&case);
    assert!(
        l.ends_with("1 staged, 0 inserted, 0 updated, 1 deleted"),
        "{l}"
    );
    assert!(
        f.ends_with("1 staged, 0 inserted, 0 updated, 1 deleted"),
        "{f}"
    );
    assert_eq!(
        case.rows(history),
        "1 billy 1-2; 1 william 3-3; 2 laura 2-live"
    );
    assert_eq!(case.rows(live), "2 laura");

    // Deleted, then back: a new version, after a gap.
    case.source_is(&["'1','billy','EUR',NULL", "'2','laura','EUR',NULL"]);
    let (l, f) = both(&case);
    assert!(
        l.ends_with("2 staged, 1 inserted, 0 updated, 0 deleted"),
        "{l}"
    );
    assert!(
        f.ends_with("2 staged, 1 inserted, 0 updated, 0 deleted"),
        "{f}"
    );
    assert_eq!(
        case.rows(history),
        "1 billy 1-2; 1 william 3-3; 1 billy 5-live; 2 laura 2-live"
    );
    assert_eq!(case.rows(live), "1 billy; 2 laura");
    assert_eq!(case.rows(audit_live), "1 billy; 2 laura");

    // As of batch 3, and as of a time: the versions valid then.
    assert_eq!(
        case.rows(
            "SELECT string_agg(sku || ' ' || name, '; ' ORDER BY sku) FROM {ws}.audit__product_db__products__history \
             WHERE ds_surf_batch_in <= 3 AND ds_surf_batch_out >= 3"
        ),
        "1 william; 2 laura"
    );
    let committed_3 = case.merge.sql(
        "SELECT committed_at FROM zero_forensic.ds_batch_metrics WHERE stream = 'product_db' AND batch_id = 3",
    );
    assert_eq!(
        case.rows(&format!(
            "SELECT string_agg(sku || ' ' || name, '; ' ORDER BY sku) FROM {{ws}}.audit__product_db__products__history \
             WHERE ds_valid_from <= '{committed_3}' AND (ds_valid_to IS NULL OR ds_valid_to > '{committed_3}')"
        )),
        "1 william; 2 laura"
    );
    // The live merge stamps each row with the batch that last wrote it; unchanged rows keep theirs.
    assert_eq!(
        case.merge.sql(
            "SELECT string_agg(sku || ':' || ds_surf_batch_id, ' ' ORDER BY sku) FROM zero_live.product_db__products__merge"
        ),
        "1:5 2:2"
    );
    assert_eq!(
        case.merge.sql(
            "SELECT string_agg(batch_id || ':' || state || ':' || rows_inserted || '/' || rows_updated || '/' || rows_deleted, ' ' ORDER BY batch_id) \
             FROM zero_live.ds_batch_metrics WHERE stream = 'product_db'"
        ),
        "1:committed:1/0/0 2:committed:1/0/0 3:committed:0/1/0 4:committed:0/0/1 5:committed:1/0/0"
    );
}

/// `('ab','c')` and `('a','bc')` differ, and so do NULL and a value: each is a change, not a no-op.
#[test]
fn hashes_see_through_separators_and_nulls() {
    let Some(pg) = tests::postgres() else { return };
    let case = Case::new(pg, "hash");
    case.source_is(&["'k','ab','c',NULL"]);
    case.batch("zero_live");
    case.source_is(&["'k','a','bc',NULL"]);
    let out = case.batch("zero_live");
    assert!(out.ends_with("0 inserted, 1 updated, 0 deleted"), "{out}");
    case.source_is(&["'k','a','bc','2026-01-01 00:00'"]);
    let out = case.batch("zero_live");
    assert!(out.ends_with("0 inserted, 1 updated, 0 deleted"), "{out}");
    case.source_is(&["'k','a','bc',NULL"]);
    let out = case.batch("zero_live");
    assert!(out.ends_with("0 inserted, 1 updated, 0 deleted"), "{out}");
    // Nothing changed: nothing written.
    let out = case.batch("zero_live");
    assert!(out.ends_with("0 inserted, 0 updated, 0 deleted"), "{out}");
    assert_eq!(
        case.rows("SELECT name || '|' || currency || '|' || coalesce(updated_at::text, 'null') FROM {ws}.live__product_db__products"),
        "a|bc|null"
    );
    // The hashes `ds` computes while it streams a snapshot are the ones its SQL computes for change events:
    // a text with a tab, a backslash and an accent, a NULL.
    case.source
        .sql(r"UPDATE products SET name = E'tab\there \\ é'");
    case.batch("zero_live");
    let column = |c: &str| {
        format!(
            "CASE WHEN {c} IS NULL THEN '' ELSE '{c}=' || length(concat({c})) || ':' || concat({c}) END"
        )
    };
    let all = ["sku", "name", "price", "currency", "in_stock", "updated_at"]
        .iter()
        .map(|c| column(c))
        .collect::<Vec<_>>()
        .join(" || ");
    assert_eq!(
        case.merge.sql(&format!(
            "SELECT (ds_surf_all_hash = md5({all}))::text || ' ' || (ds_surf_key_hash = md5({}))::text              FROM zero_live.product_db__products__merge",
            column("sku")
        )),
        "true true"
    );
}

/// A batch left open by a run that stopped (during ingestion, or after it) is resumed by the next run and
/// ends as an uninterrupted run would: nothing lost, nothing doubled.
#[test]
fn a_stopped_batch_is_resumed_and_converges() {
    let Some(pg) = tests::postgres() else { return };
    let case = Case::new(pg, "resume");
    case.source_is(&["'1','billy','EUR',NULL", "'2','laura','EUR',NULL"]);
    case.batch("zero_forensic");
    case.source_is(&["'1','william','EUR',NULL", "'3','zoe','EUR',NULL"]);
    // Stopped during ingestion of batch 2: the batch is open, staging holds a partial, wrong row of it.
    case.merge.sql(
        "UPDATE zero_forensic.ds_batch_counter SET current_batch = 2 WHERE stream = 'product_db'; \
         INSERT INTO zero_forensic.ds_batch_metrics (stream, batch_id, state, started_at) VALUES ('product_db', 2, 'started', now()); \
         INSERT INTO zero_forensic.product_db__products__staging (sku, name, price, currency, in_stock, ds_surf_key_hash, ds_surf_all_hash, ds_surf_batch_id) \
         VALUES ('9', 'partial', 1, 'EUR', 1, 'x', 'y', 2)",
    );
    let out = case.batch("zero_forensic");
    assert!(
        out.starts_with("zero_forensic.product_db: batch 2 committed (resumed)"),
        "{out}"
    );
    assert!(
        out.ends_with("2 staged, 1 inserted, 1 updated, 1 deleted"),
        "{out}"
    );
    let history = "SELECT string_agg(sku || ' ' || name || ' ' || ds_surf_batch_in || '-' || ds_surf_batch_out, '; ' \
                   ORDER BY sku, ds_surf_batch_in) FROM zero_forensic.product_db__products__merge";
    assert_eq!(
        case.merge.sql(history),
        "1 billy 1-1; 1 william 2-2147483647; 2 laura 1-1; 3 zoe 2-2147483647"
    );
    // Stopped after ingestion (batch 3 `ingested`, not merged): the next run merges it once.
    case.source_is(&["'3','zoe','EUR',NULL"]);
    case.merge.sql(
        "UPDATE zero_forensic.ds_batch_counter SET current_batch = 3 WHERE stream = 'product_db'; \
         INSERT INTO zero_forensic.ds_batch_metrics (stream, batch_id, state, started_at, ingested_at) VALUES ('product_db', 3, 'ingested', now(), now()); \
         INSERT INTO zero_forensic.product_db__products__staging (sku, name, price, currency, in_stock, ds_surf_key_hash, ds_surf_all_hash, ds_surf_batch_id) \
         SELECT sku, name, price, currency, in_stock, ds_surf_key_hash, ds_surf_all_hash, 3 FROM zero_forensic.product_db__products__merge \
         WHERE sku = '3'",
    );
    let out = case.batch("zero_forensic");
    assert!(out.contains("batch 3 committed (resumed)"), "{out}");
    assert!(
        out.ends_with("0 staged, 0 inserted, 0 updated, 1 deleted"),
        "{out}"
    );
    // And the next batch is a new one.
    let out = case.batch("zero_forensic");
    assert!(out.contains("batch 4 committed in"), "{out}");
    assert!(
        out.ends_with("1 staged, 0 inserted, 0 updated, 0 deleted"),
        "{out}"
    );
}

/// A source that lacks a declared column, or holds a value that does not fit: the batch fails naming the
/// store, the dataset and the column; nothing is committed; after the fix the next run succeeds.
#[test]
fn bad_source_data_fails_the_batch_clearly_and_the_fix_lets_it_through() {
    let Some(pg) = tests::postgres() else { return };
    let case = Case::new(pg, "bad");
    case.source_is(&["'1','billy','EUR',NULL"]);
    case.source
        .sql("ALTER TABLE products RENAME COLUMN in_stock TO stock");
    let out = case.ds(&["merge", "run", "zero_live", "product_db"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = text(&out);
    assert!(
        report.contains("zero_live.product_db: dataset products"),
        "{report}"
    );
    assert!(
        report.contains("column \"in_stock\" does not exist"),
        "{report}"
    );
    assert!(report.contains("the batch was not committed"), "{report}");
    assert_eq!(
        case.merge
            .sql("SELECT count(*) FROM zero_live.ds_batch_metrics WHERE state = 'committed'"),
        "0"
    );
    // A value that does not fit the declared type.
    case.source.sql(
        "ALTER TABLE products RENAME COLUMN stock TO in_stock; \
         ALTER TABLE products ALTER COLUMN currency TYPE varchar(10); UPDATE products SET currency = 'EURO-LONG'",
    );
    let out = case.ds(&["merge", "run", "zero_live", "product_db"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = text(&out);
    assert!(report.contains("dataset products"), "{report}");
    assert!(report.contains("column currency"), "{report}");
    assert_eq!(
        case.merge
            .sql("SELECT count(*) FROM zero_live.product_db__products__merge"),
        "0"
    );
    // Fixed: the open batch goes through.
    case.source.sql("UPDATE products SET currency = 'EUR'");
    let out = case.batch("zero_live");
    assert!(out.contains("batch 1 committed (resumed)"), "{out}");
    assert!(
        out.ends_with("1 staged, 1 inserted, 0 updated, 0 deleted"),
        "{out}"
    );
}

#[test]
fn an_unknown_stream_is_named_with_the_ones_there_are() {
    let Some(pg) = tests::postgres() else { return };
    let case = Case::new(pg, "unk");
    let out = case.ds(&["merge", "run", "zero_live", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("no ingestion stream `zero_live.nope`: the streams of this model are"),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("zero_live.product_db"),
        "{}",
        text(&out)
    );
}

/// Schema evolution. A dataset gains a nullable column: `ds apply` adds it to staging, merge tables and views
/// in place; the next batch carries it, without a new version of every row (the hash of a row with the new
/// column NULL is the hash it had), and history is kept. Then a type widens, the same way.
#[test]
fn schema_evolution_flows_through_without_rewriting_history() {
    let Some(pg) = tests::postgres() else { return };
    let case = Case::new(pg, "evo");
    case.source_is(&["'1','billy','EUR',NULL", "'2','laura','EUR',NULL"]);
    case.batch("zero_forensic");
    case.source_is(&["'1','william','EUR',NULL", "'2','laura','EUR',NULL"]);
    case.batch("zero_forensic");
    let path = case.model.join("team_shop.ds.hcl");
    let model = std::fs::read_to_string(&path).unwrap();
    let at = "          updated_at = { type = \"timestamp\" }";
    assert!(model.contains(at));
    std::fs::write(
        &path,
        model.replacen(
            at,
            &format!("{at}\n          color      = {{ type = \"varchar(20)\" }}"),
            1,
        ),
    )
    .unwrap();
    case.apply();
    case.source
        .sql("ALTER TABLE products ADD COLUMN color varchar(20)");
    let out = case.batch("zero_forensic");
    assert!(
        out.ends_with("2 staged, 0 inserted, 0 updated, 0 deleted"),
        "{out}"
    );
    case.source
        .sql("UPDATE products SET color = 'red' WHERE sku = '2'");
    let out = case.batch("zero_forensic");
    assert!(
        out.ends_with("2 staged, 0 inserted, 1 updated, 0 deleted"),
        "{out}"
    );
    assert_eq!(
        case.rows(
            "SELECT string_agg(sku || ' ' || name || ' ' || coalesce(color, '-') || ' ' || ds_surf_batch_in || '-' || \
             CASE WHEN ds_surf_batch_out = 2147483647 THEN 'live' ELSE ds_surf_batch_out::text END, '; ' \
             ORDER BY sku, ds_surf_batch_in) FROM {ws}.audit__product_db__products__history"
        ),
        "1 billy - 1-1; 1 william - 2-live; 2 laura - 1-3; 2 laura red 4-live"
    );
    assert_eq!(
        case.rows("SELECT string_agg(sku || ' ' || coalesce(color, '-'), '; ' ORDER BY sku) FROM {ws}.audit__product_db__products"),
        "1 -; 2 red"
    );

    // A type widens (integer to bigint): changed in place under the views; the next batch carries a value
    // only the wider type holds, and no other row gets a new version.
    let model = std::fs::read_to_string(&path).unwrap();
    let at = "in_stock   = { type = \"integer\"";
    assert!(model.contains(at));
    std::fs::write(
        &path,
        model.replacen(at, "in_stock   = { type = \"bigint\"", 1),
    )
    .unwrap();
    case.apply();
    case.source.sql(
        "ALTER TABLE products ALTER COLUMN in_stock TYPE bigint; \
         UPDATE products SET in_stock = 5000000000 WHERE sku = '1'",
    );
    let out = case.batch("zero_forensic");
    assert!(
        out.ends_with("2 staged, 0 inserted, 1 updated, 0 deleted"),
        "{out}"
    );
    assert_eq!(
        case.rows(
            "SELECT string_agg(sku || ' ' || in_stock || ' ' || ds_surf_batch_in, '; ' ORDER BY sku, ds_surf_batch_in) \
             FROM {ws}.audit__product_db__products__history"
        ),
        "1 1 1; 1 1 2; 1 5000000000 5; 2 1 1; 2 1 4"
    );
}

/// `ds scheduler run --once` runs every due job once: two schedulers at once share the jobs and never run
/// one twice; `ds status` shows where each stream stands.
#[test]
fn schedulers_share_the_jobs_and_status_shows_the_streams() {
    let Some(pg) = tests::postgres() else { return };
    let case = Case::new(pg, "sched");
    case.source_is(&["'1','billy','EUR',NULL", "'2','laura','EUR',NULL"]);
    let spawn = || {
        let pg = case.merge.pg;
        Command::new(tests::ds_binary())
            .args([
                "scheduler",
                "run",
                "--once",
                "-C",
                case.model.to_str().unwrap(),
            ])
            .env("MERGE_RW_USER", &pg.user)
            .env("MERGE_RW_PASSWORD", &pg.password)
            .env("SHOP_DB_USER", &pg.user)
            .env("SHOP_DB_PASSWORD", &pg.password)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert_eq!(a.status.code(), Some(0), "{}", text(&a));
    assert_eq!(b.status.code(), Some(0), "{}", text(&b));
    let logs = text(&a) + &text(&b);
    // Each stream's job ran on exactly one of them.
    for stream in ["zero_live.product_db", "zero_forensic.product_db"] {
        assert_eq!(
            logs.matches(&format!("{stream}: batch 1 committed"))
                .count(),
            1,
            "{logs}"
        );
    }
    for stream in ["zero_live.customer_db", "zero_forensic.customer_db"] {
        assert_eq!(
            logs.matches(&format!("{stream}: nothing new")).count(),
            1,
            "{logs}"
        );
    }
    assert_eq!(
        case.merge
            .sql("SELECT count(*) FROM zero_live.ds_batch_metrics WHERE stream = 'product_db'"),
        "1"
    );
    // Run again at once: nothing is due yet (the interval is 5 minutes).
    let again = case.ds(&["scheduler", "run", "--once"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(
        text(&again).contains("ran 0 job(s), 0 failed"),
        "{}",
        text(&again)
    );
    let status = case.ds(&["status"]);
    assert_eq!(status.status.code(), Some(0), "{}", text(&status));
    let status = text(&status);
    let line = status
        .lines()
        .find(|l| l.starts_with("zero_forensic.product_db "))
        .unwrap_or_else(|| panic!("{status}"));
    let cells: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cells[1], "1", "{line}");
    assert_eq!(cells[3], "2/0/0", "{line}");
    assert_eq!(cells[4], "-", "{line}");
    assert_eq!(cells[6], "ok", "{line}");
    // A failing job is reported, retried later, and shown with its error.
    case.source.sql("DROP TABLE products");
    case.merge
        .sql("UPDATE zero_live.ds_jobs SET next_run_at = now() WHERE job = 'product_db'");
    let failed = case.ds(&["scheduler", "run", "--once"]);
    assert_eq!(failed.status.code(), Some(1), "{}", text(&failed));
    assert!(
        text(&failed)
            .contains("zero_live.product_db: FAILED: zero_live.product_db: dataset products"),
        "{}",
        text(&failed)
    );
    let status = text(&case.ds(&["status"]));
    assert!(
        status.contains("zero_live.product_db: last run failed:"),
        "{status}"
    );
}

/// sql_watermark: each batch reads the rows at or above the last batch's high watermark (the boundary again,
/// on purpose) and never deletes.
#[test]
fn watermark_batches_read_above_the_last_high_mark_and_never_delete() {
    let Some(pg) = tests::postgres() else { return };
    let case = Case::new(pg, "wm");
    let path = case.model.join("team_shop.ds.hcl");
    let model = std::fs::read_to_string(&path).unwrap();
    let start = model.find("    capture \"sql_snapshot\" {").unwrap();
    let model = format!(
        "{}    capture \"sql_watermark\" {{\n      watermark = {{ column = \"updated_at\" }}\n{}",
        &model[..start],
        &model[start + "    capture \"sql_snapshot\" {\n".len()..]
    );
    std::fs::write(&path, model).unwrap();
    case.apply();
    let live = "SELECT coalesce(string_agg(sku || ' ' || name, '; ' ORDER BY sku), '') FROM {ws}.live__product_db__products";

    // An empty source: nothing to read, no batch.
    let out = case.batch("zero_live");
    assert!(out.contains("nothing new"), "{out}");
    case.source_is(&[
        "'1','billy','EUR','2026-01-01 10:00'",
        "'2','laura','EUR','2026-01-01 11:00'",
    ]);
    let out = case.batch("zero_live");
    assert!(
        out.ends_with("2 staged, 2 inserted, 0 updated, 0 deleted"),
        "{out}"
    );
    assert_eq!(
        case.merge
            .sql("SELECT high_watermark FROM zero_live.ds_batch_metrics WHERE batch_id = 1"),
        "2026-01-01 11:00:00"
    );
    // One row changed (its watermark moves), one deleted at the source: the change arrives, the delete
    // does not (watermark ingestion cannot see it); the boundary row is read again and changes nothing.
    case.source.sql(
        "UPDATE products SET name = 'william', updated_at = '2026-01-01 12:00' WHERE sku = '1'; \
         INSERT INTO products VALUES ('3', 'zoe', 1, 'EUR', 1, '2026-01-01 11:00'); \
         DELETE FROM products WHERE sku = '2'",
    );
    let out = case.batch("zero_live");
    assert!(
        out.ends_with("2 staged, 1 inserted, 1 updated, 0 deleted"),
        "{out}"
    );
    assert_eq!(case.rows(live), "1 william; 2 laura; 3 zoe");
    // A row written late with an old watermark (below the high mark) is not read: that is the contract.
    case.source
        .sql("INSERT INTO products VALUES ('4', 'old', 1, 'EUR', 1, '2025-01-01 00:00')");
    let out = case.batch("zero_live");
    assert!(
        out.ends_with("1 staged, 0 inserted, 0 updated, 0 deleted"),
        "{out}"
    );
    assert_eq!(case.rows(live), "1 william; 2 laura; 3 zoe");
}

/// A transformer: the scheduler runs its SQL over its workspace's views and ingests the result as a
/// snapshot of its output store, which is merged and read like any other.
#[test]
fn a_transformer_feeds_its_output_store_from_its_inputs() {
    let Some(pg) = tests::postgres() else { return };
    let case = Case::new(pg, "tfm");
    // The cdc store's events, as the sink connector would land them.
    case.merge.sql(
        "INSERT INTO zero_live.customer_db__customers__landing (id, first_name, last_name, is_active, created_at, __op) VALUES \
           (1, 'Ada', 'Lovelace', true, now(), 'c'), (2, 'Alan', 'Turing', true, now(), 'c'), (3, 'Gone', 'Away', false, now(), 'c'); \
         INSERT INTO zero_live.customer_db__addresses__landing (id, customer_id, line1, city, country_code, is_primary, __op) VALUES \
           (10, 1, 'x', 'London', 'GB', true, 'c')",
    );
    let out = case.batch_of("zero_live", "customer_db");
    assert!(
        out.ends_with("4 staged, 4 inserted, 0 updated, 0 deleted"),
        "{out}"
    );
    let directory = "SELECT coalesce(string_agg(customer_id || ' ' || full_name || ' ' || coalesce(city, '-'), '; ' \
                     ORDER BY customer_id), '') FROM {ws}.live__directory__customer_directory";
    case.merge
        .sql("UPDATE zero_live.ds_jobs SET next_run_at = now()");
    let out = case.ds(&["scheduler", "run", "--once"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("zero_live.directory: batch 1 committed"),
        "{}",
        text(&out)
    );
    assert_eq!(
        case.rows(directory),
        "1 Ada Lovelace London; 2 Alan Turing -"
    );
    // Without a trigger of its own it waits for its inputs: nothing committed since, it does not run.
    let out = case.ds(&["scheduler", "run", "--once"]);
    assert!(
        !text(&out).contains("zero_live.directory"),
        "{}",
        text(&out)
    );
    // An input's stream is due and commits a batch: in the same pass the transformer is woken and runs (a
    // snapshot: the gone row goes too).
    case.merge.sql(
        "INSERT INTO zero_live.customer_db__customers__landing (id, first_name, last_name, is_active, created_at, __op) VALUES \
           (2, 'Alan', 'Turing', false, now(), 'u'); \
         UPDATE zero_live.ds_jobs SET next_run_at = now() WHERE job = 'customer_db'",
    );
    let out = case.ds(&["scheduler", "run", "--once"]);
    assert!(
        text(&out).contains("zero_live.customer_db: batch 2 committed"),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("zero_live.directory: batch 2 committed"),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("0 inserted, 0 updated, 1 deleted"),
        "{}",
        text(&out)
    );
    assert_eq!(case.rows(directory), "1 Ada Lovelace London");
    // `ds status` shows the transformer's output stream with the ingestion streams.
    let status = text(&case.ds(&["status"]));
    let line = status
        .lines()
        .find(|l| l.starts_with("zero_live.directory "))
        .unwrap_or_else(|| panic!("{status}"));
    assert_eq!(line.split_whitespace().nth(1), Some("2"), "{line}");
}

/// Killed with SIGKILL at several points of a batch (during ingestion, during the merge), a stream's next
/// run converges to what an uninterrupted run gives: the live versions are exactly the source's rows,
/// one per key, and every batch committed once.
#[test]
fn sigkill_at_any_point_then_a_rerun_converges() {
    let Some(pg) = tests::postgres() else { return };
    let case = Case::new(pg, "kill");
    let rows = 200_000;
    case.source.sql(&format!(
        "INSERT INTO products SELECT 'SKU-' || g, 'product ' || g, g % 1000, 'EUR', g % 100, NULL \
         FROM generate_series(1, {rows}) g"
    ));
    let converged = |case: &Case| {
        // The live versions are the source's rows, one per key.
        let source = case.source.sql(
            "SELECT count(*) || ' ' || md5(string_agg(sku || name || price || in_stock, ',' ORDER BY sku)) FROM products",
        );
        let merged = case.merge.sql(
            "SELECT count(*) || ' ' || md5(string_agg(sku || name || price || in_stock, ',' ORDER BY sku)) \
             FROM zero_forensic.product_db__products__merge WHERE ds_surf_batch_out = 2147483647",
        );
        assert_eq!(merged, source);
        assert_eq!(
            case.merge.sql(
                "SELECT count(*) FROM (SELECT ds_surf_key_hash FROM zero_forensic.product_db__products__merge \
                 WHERE ds_surf_batch_out = 2147483647 GROUP BY 1 HAVING count(*) > 1) AS doubled"
            ),
            "0"
        );
    };
    let mut phases = Vec::new();
    for (round, delays) in [[150u64, 700, 1500], [300, 1000, 2500]].iter().enumerate() {
        if round == 1 {
            case.source.sql(
                "UPDATE products SET price = price + 1 WHERE substr(sku, 5)::int % 100 = 7; \
                 DELETE FROM products WHERE substr(sku, 5)::int % 1000 = 3; \
                 INSERT INTO products VALUES ('NEW-1', 'new', 1, 'EUR', 1, NULL)",
            );
        }
        for delay in delays {
            let pg = case.merge.pg;
            let mut child = Command::new(tests::ds_binary())
                .args(["merge", "run", "zero_forensic", "product_db", "-C"])
                .arg(&case.model)
                .env("MERGE_RW_USER", &pg.user)
                .env("MERGE_RW_PASSWORD", &pg.password)
                .env("SHOP_DB_USER", &pg.user)
                .env("SHOP_DB_PASSWORD", &pg.password)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(std::time::Duration::from_millis(*delay));
            let _ = child.kill();
            let _ = child.wait();
            phases.push(case.merge.sql(
                "SELECT coalesce(max(batch_id || ':' || state), 'none') FROM zero_forensic.ds_batch_metrics",
            ));
        }
        let out = case.batch("zero_forensic");
        assert!(out.contains("committed"), "{out}");
        converged(&case);
    }
    // Every batch committed exactly once, in order, and nothing is left open.
    let batches = case.merge.sql(
        "SELECT string_agg(batch_id || ':' || state, ' ' ORDER BY batch_id) FROM zero_forensic.ds_batch_metrics",
    );
    assert!(
        batches.split(' ').all(|b| b.ends_with(":committed")),
        "{batches} (killed at {phases:?})"
    );
    // The kills hit more than one phase (a batch left open, a batch already committed, ...).
    let distinct: std::collections::BTreeSet<&String> = phases.iter().collect();
    assert!(
        distinct.len() > 1,
        "every kill found the same state: {phases:?}"
    );
}

/// A scheduler killed (SIGKILL) in the middle of a job keeps its lease until it expires: no other scheduler
/// takes the job meanwhile; once it has expired, the next one takes it over and the batch converges.
#[test]
fn a_dead_schedulers_lease_expires_and_another_takes_the_job_over() {
    let Some(pg) = tests::postgres() else { return };
    let case = Case::new(pg, "lease");
    case.source.sql(
        "INSERT INTO products SELECT 'SKU-' || g, 'product ' || g, g % 1000, 'EUR', g % 100, NULL \
         FROM generate_series(1, 300000) g",
    );
    // Only the forensic product stream is due.
    for schema in ["zero_live", "zero_forensic"] {
        case.merge.sql(&format!(
            "UPDATE {schema}.ds_jobs SET next_run_at = now() + interval '1 hour' \
             WHERE NOT (job = 'product_db' AND '{schema}' = 'zero_forensic')"
        ));
    }
    let scheduler = |args: &[&str]| {
        let pg = case.merge.pg;
        let mut command = Command::new(tests::ds_binary());
        command
            .args(["scheduler", "run"])
            .args(args)
            .arg("-C")
            .arg(&case.model)
            .env("MERGE_RW_USER", &pg.user)
            .env("MERGE_RW_PASSWORD", &pg.password)
            .env("SHOP_DB_USER", &pg.user)
            .env("SHOP_DB_PASSWORD", &pg.password);
        command
    };
    let lease = "SELECT coalesce(lease_owner, '-') || ' ' || coalesce(last_status, '-') \
                 FROM zero_forensic.ds_jobs WHERE job = 'product_db'";
    let mut first = scheduler(&["--lease", "5s", "--poll", "1s"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed as soon as it holds the job.
    let held = tests::eventually(20, "held", || {
        if case.merge.sql(lease).starts_with('-') {
            "free"
        } else {
            "held"
        }
        .to_string()
    });
    assert_eq!(held, "held");
    first.kill().unwrap();
    first.wait().unwrap();
    let owner = case.merge.sql(lease);
    assert!(owner.ends_with(" -"), "the killed run finished: {owner}");

    // The lease still runs: another scheduler leaves the job alone.
    let out = scheduler(&["--once"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("ran 0 job(s)"), "{}", text(&out));
    assert_eq!(case.merge.sql(lease), owner);

    // Expired: the next one takes it over and the batch is committed once.
    let expired = tests::eventually(20, "expired", || {
        case.merge.sql(
            "SELECT CASE WHEN lease_until < now() THEN 'expired' ELSE 'running' END \
                  FROM zero_forensic.ds_jobs WHERE job = 'product_db'",
        )
    });
    assert_eq!(expired, "expired");
    let out = scheduler(&["--once"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("zero_forensic.product_db: batch 1 committed"),
        "{}",
        text(&out)
    );
    assert_eq!(case.merge.sql(lease), "- ok");
    assert_eq!(
        case.merge.sql(
            "SELECT count(*) || ' ' || count(DISTINCT ds_surf_key_hash) FROM zero_forensic.product_db__products__merge"
        ),
        "300000 300000"
    );
    assert_eq!(
        case.merge.sql(
            "SELECT string_agg(batch_id || ':' || state, ' ') FROM zero_forensic.ds_batch_metrics"
        ),
        "1:committed"
    );
}

/// A dataset without a primary key: every column is its key, so a changed row is an old row gone and a new
/// one come, and rows that differ in any column are different rows.
#[test]
fn a_keyless_dataset_keys_on_every_column() {
    let Some(pg) = tests::postgres() else { return };
    let case = Case::edited(pg, "nokey", |text| {
        text.replace(
            "sku        = { type = \"varchar(32)\", nullable = false, primary_key = true }",
            "sku        = { type = \"varchar(32)\", nullable = false }",
        )
    });
    case.source
        .sql("ALTER TABLE products DROP CONSTRAINT products_pkey");
    case.source_is(&["'1','a','EUR',NULL", "'1','b','EUR',NULL"]);
    let out = case.batch("zero_forensic");
    assert!(
        out.ends_with("2 staged, 2 inserted, 0 updated, 0 deleted"),
        "{out}"
    );
    case.source_is(&["'1','a','EUR',NULL", "'1','c','EUR',NULL"]);
    let out = case.batch("zero_forensic");
    assert!(
        out.ends_with("2 staged, 1 inserted, 0 updated, 1 deleted"),
        "{out}"
    );
    assert_eq!(
        case.rows(
            "SELECT string_agg(sku || name || ' ' || ds_surf_batch_in || '-' || \
             CASE WHEN ds_surf_batch_out = 2147483647 THEN 'live' ELSE ds_surf_batch_out::text END, '; ' \
             ORDER BY name) FROM {ws}.audit__product_db__products__history"
        ),
        "1a 1-live; 1b 1-1; 1c 2-live"
    );
}

/// `ds scheduler run` keeps running jobs until SIGTERM, then lets the running batch finish and exits 0.
#[test]
fn the_scheduler_stops_cleanly_on_sigterm() {
    let Some(pg) = tests::postgres() else { return };
    let case = Case::new(pg, "term");
    case.source_is(&["'1','billy','EUR',NULL"]);
    let child = Command::new(tests::ds_binary())
        .args(["scheduler", "run", "--poll", "1s", "-C"])
        .arg(&case.model)
        .env("MERGE_RW_USER", &pg.user)
        .env("MERGE_RW_PASSWORD", &pg.password)
        .env("SHOP_DB_USER", &pg.user)
        .env("SHOP_DB_PASSWORD", &pg.password)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // It runs the due jobs (the product store's stream on both data platforms among them) and then waits
    // for the next due one.
    let committed = tests::eventually(60, "2", || {
        case.merge.sql(
            "SELECT (SELECT count(*) FROM zero_live.ds_batch_metrics WHERE state = 'committed' AND stream = 'product_db') \
                  + (SELECT count(*) FROM zero_forensic.ds_batch_metrics WHERE state = 'committed' AND stream = 'product_db')",
        )
    });
    assert_eq!(committed, "2");
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let log = text(&out);
    assert!(
        log.contains("stopping: the running batch finishes first"),
        "{log}"
    );
    assert!(log.contains("stopped"), "{log}");
    assert!(
        log.contains("zero_live.product_db: batch 1 committed"),
        "{log}"
    );
    assert_eq!(
        case.merge
            .sql("SELECT count(*) FROM zero_live.ds_batch_metrics WHERE state <> 'committed'"),
        "0"
    );
    // Its leases were given back.
    assert_eq!(
        case.merge
            .sql("SELECT count(*) FROM zero_live.ds_jobs WHERE lease_owner IS NOT NULL"),
        "0"
    );
}

/// The product store read from MariaDB instead: its `postgres` source block becomes a `mysql` one on the
/// stack's MariaDB, database `db`, with credential `legacy_db`.
fn product_db_on_mysql(text: String, mysql: &tests::Mysql, db: &str) -> String {
    let Some(start) = text.find("datastore \"product_db\"") else {
        return text;
    };
    let (head, rest) = text.split_at(start);
    let end = rest.find("    dataset \"products\"").unwrap();
    let (block, tail) = rest.split_at(end);
    let mut lines: Vec<String> = Vec::new();
    for line in block.lines() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        lines.push(if trimmed.starts_with("credential") {
            format!("{indent}credential  = \"legacy_db\"")
        } else if trimmed == "postgres {" {
            format!("{indent}mysql {{")
        } else if trimmed.starts_with("port ") {
            format!("{indent}port     = {}", mysql.port)
        } else if trimmed.starts_with("database ") {
            format!("{indent}database = \"{db}\"")
        } else {
            line.to_string()
        });
    }
    format!("{head}{}\n{tail}", lines.join("\n"))
}

const MYSQL_PRODUCTS: &str = "CREATE TABLE products (sku varchar(32) PRIMARY KEY, name varchar(200) NOT NULL, \
     price decimal(10,2) NOT NULL, currency char(3) NOT NULL, in_stock int NOT NULL, updated_at datetime(6))";

/// A case whose product store reads the MariaDB database `db` (`products` created there).
fn mysql_case(pg: &'static Postgres, short: &str, db: &tests::MysqlDatabase) -> Case {
    db.sql(MYSQL_PRODUCTS);
    let mut case = Case::edited(pg, short, |text| {
        product_db_on_mysql(text, db.mysql, &db.name)
    });
    case.env = vec![
        ("LEGACY_DB_USER".into(), db.mysql.user.clone()),
        ("LEGACY_DB_PASSWORD".into(), db.mysql.password.clone()),
    ];
    case
}

/// sql_snapshot from MariaDB: rows with tabs, newlines, backslashes, quotes, accents, NULLs and fractional
/// seconds arrive exactly; a second batch carries an update, a delete and an insert, live and forensic;
/// a batch over unchanged rows changes nothing (the hashes of MySQL's text are stable).
#[test]
fn a_mysql_snapshot_streams_through_exactly() {
    let Some(pg) = tests::postgres() else { return };
    let Some(mysql) = tests::mysql() else { return };
    let db = mysql.database("mys");
    let case = mysql_case(pg, "mys", &db);
    db.sql(
        "INSERT INTO products VALUES \
         ('a1', 'plain', 1.50, 'EUR', 3, '2026-01-01 10:00:00'), \
         ('a2', 'tab\\there, back\\\\slash \"q\" it''s é', 2.00, 'EUR', 0, NULL), \
         ('a3', 'line\\nbreak\\rcr', 3.25, 'USD', -1, '2026-01-01 11:00:00.123456')",
    );
    let out = case.batch("zero_live");
    assert!(
        out.ends_with("3 staged, 3 inserted, 0 updated, 0 deleted"),
        "{out}"
    );
    let live = "SELECT string_agg(concat_ws('|', sku, to_json(name), price, currency, in_stock, \
                coalesce(updated_at::text, '-')), '; ' ORDER BY sku) FROM {ws}.live__product_db__products";
    assert_eq!(
        case.rows(live),
        "a1|\"plain\"|1.50|EUR|3|2026-01-01 10:00:00; \
         a2|\"tab\\there, back\\\\slash \\\"q\\\" it's é\"|2.00|EUR|0|-; \
         a3|\"line\\nbreak\\rcr\"|3.25|USD|-1|2026-01-01 11:00:00.123456"
    );
    // Nothing changed: nothing is touched.
    let out = case.batch("zero_live");
    assert!(
        out.ends_with("3 staged, 0 inserted, 0 updated, 0 deleted"),
        "{out}"
    );
    db.sql(
        "UPDATE products SET price = 1.75 WHERE sku = 'a1'; DELETE FROM products WHERE sku = 'a2'; \
         INSERT INTO products VALUES ('a4', 'new', 4.00, 'GBP', 1, NULL)",
    );
    let out = case.batch("zero_live");
    assert!(
        out.ends_with("3 staged, 1 inserted, 1 updated, 1 deleted"),
        "{out}"
    );
    assert_eq!(
        case.rows("SELECT string_agg(sku || ' ' || price, '; ' ORDER BY sku) FROM {ws}.live__product_db__products"),
        "a1 1.75; a3 3.25; a4 4.00"
    );
    // The forensic platform, in one batch from the current rows, then a second change.
    let out = case.batch("zero_forensic");
    assert!(
        out.ends_with("3 staged, 3 inserted, 0 updated, 0 deleted"),
        "{out}"
    );
    db.sql("UPDATE products SET name = 'renamed' WHERE sku = 'a3'");
    let out = case.batch("zero_forensic");
    assert!(
        out.ends_with("3 staged, 0 inserted, 1 updated, 0 deleted"),
        "{out}"
    );
    assert_eq!(
        case.merge.sql(
            "SELECT string_agg(name || ' ' || ds_surf_batch_in || '-' || ds_surf_batch_out, '; ' ORDER BY ds_surf_batch_in) \
             FROM zero_forensic.product_db__products__merge WHERE sku = 'a3'"
        ),
        "line\nbreak\rcr 1-1; renamed 2-2147483647"
    );
}

/// sql_watermark from MariaDB: the high mark is MySQL's text of the column, and the next batch reads from it.
#[test]
fn a_mysql_watermark_reads_above_the_last_high_mark() {
    let Some(pg) = tests::postgres() else { return };
    let Some(mysql) = tests::mysql() else { return };
    let db = mysql.database("myw");
    let case = mysql_case(pg, "myw", &db);
    let path = case.model.join("team_shop.ds.hcl");
    let model = std::fs::read_to_string(&path).unwrap().replacen(
        "    capture \"sql_snapshot\" {\n      consistency = \"MULTI_DATASET\"\n",
        "    capture \"sql_watermark\" {\n      watermark = { column = \"updated_at\" }\n",
        2,
    );
    std::fs::write(&path, &model).unwrap();
    assert!(model.contains("mysql {"), "{model}");
    case.apply();
    db.sql(
        "INSERT INTO products VALUES ('1', 'billy', 1, 'EUR', 1, '2026-01-01 10:00:00'), \
         ('2', 'laura', 1, 'EUR', 1, '2026-01-01 11:00:00.5')",
    );
    let out = case.batch("zero_live");
    assert!(
        out.ends_with("2 staged, 2 inserted, 0 updated, 0 deleted"),
        "{out}"
    );
    assert_eq!(
        case.merge
            .sql("SELECT high_watermark FROM zero_live.ds_batch_metrics WHERE batch_id = 1"),
        "2026-01-01 11:00:00.500000"
    );
    db.sql(
        "UPDATE products SET name = 'william', updated_at = '2026-01-01 12:00' WHERE sku = '1'; \
         INSERT INTO products VALUES ('0', 'late', 1, 'EUR', 1, '2025-01-01 00:00')",
    );
    // The boundary row (laura) is read again; the late row below the mark is not.
    let out = case.batch("zero_live");
    assert!(
        out.ends_with("2 staged, 0 inserted, 1 updated, 0 deleted"),
        "{out}"
    );
    assert_eq!(
        case.rows("SELECT string_agg(sku || ' ' || name, '; ' ORDER BY sku) FROM {ws}.live__product_db__products"),
        "1 william; 2 laura"
    );
}

/// A MariaDB source missing a declared column: the batch fails naming the store, dataset and column, and
/// commits nothing; after the fix the open batch goes through.
#[test]
fn a_mysql_source_missing_a_column_fails_clearly() {
    let Some(pg) = tests::postgres() else { return };
    let Some(mysql) = tests::mysql() else { return };
    let db = mysql.database("myb");
    let case = mysql_case(pg, "myb", &db);
    db.sql(
        "INSERT INTO products VALUES ('1', 'billy', 1, 'EUR', 1, NULL); \
         ALTER TABLE products RENAME COLUMN in_stock TO stock",
    );
    let out = case.ds(&["merge", "run", "zero_live", "product_db"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = text(&out);
    assert!(
        report.contains("zero_live.product_db: dataset products"),
        "{report}"
    );
    assert!(report.contains("Unknown column 'in_stock'"), "{report}");
    assert!(report.contains("mysql://"), "{report}");
    assert!(!report.contains(&mysql.password), "{report}");
    assert_eq!(
        case.merge
            .sql("SELECT count(*) FROM zero_live.ds_batch_metrics WHERE state = 'committed'"),
        "0"
    );
    db.sql("ALTER TABLE products RENAME COLUMN stock TO in_stock");
    let out = case.batch("zero_live");
    assert!(out.contains("batch 1 committed (resumed)"), "{out}");
    assert!(
        out.ends_with("1 staged, 1 inserted, 0 updated, 0 deleted"),
        "{out}"
    );
}

/// A kafka store: the scheduler reads the topic's JSON records itself (no Kafka Connect sink: it cannot land
/// schemaless JSON faithfully), per partition from the offset it stored when it last landed, and a batch
/// takes them like cdc events: the last record of a key wins, a tombstone with a JSON key deletes. A value
/// Postgres cannot parse into its column fails the batch naming the topic, partition and offset, and
/// nothing lands.
#[test]
fn a_kafka_store_lands_its_json_topic_and_merges_it() {
    let Some(pg) = tests::postgres() else { return };
    let Some(kafka) = tests::kafka() else { return };
    let tag = format!("kfk{}", std::process::id());
    let topic = format!("{tag}.products");
    let case = Case::edited(pg, "kfk", |text| {
        let Some(start) = text.find("    capture \"sql_snapshot\" {") else {
            return text.replace("127.0.0.1:9092", &kafka.bootstrap);
        };
        let end = text[start..].find("\n    }\n").unwrap() + start + "\n    }\n".len();
        format!(
            "{}    capture \"kafka\" {{\n      consistency       = \"MULTI_DATASET\"\n      trigger           = {{ interval = \"5m\" }}\n      \
             credential        = \"shop_db\"\n      topic_for_dataset = {{ products = \"{topic}\" }}\n    }}\n{}",
            &text[..start],
            &text[end..]
        )
    });
    kafka.create_topic(&topic, 2);
    struct Topic<'a>(&'a tests::Kafka, String);
    impl Drop for Topic<'_> {
        fn drop(&mut self) {
            self.0.delete_topic(&self.1);
        }
    }
    let _topic = Topic(kafka, topic.clone());
    let live = "SELECT coalesce(string_agg(concat_ws(' ', sku, name, price, in_stock, coalesce(updated_at::text, '-')), '; ' \
                ORDER BY sku), '') FROM {ws}.live__product_db__products";

    // Nothing published yet: no batch.
    let out = case.batch("zero_live");
    assert!(out.contains("nothing new"), "{out}");
    kafka.produce(
        &topic,
        0,
        &[
            (Some(r#"{"sku":"1"}"#), Some(r#"{"sku":"1","name":"billy","price":1.5,"currency":"EUR","in_stock":3,"updated_at":"2026-01-01T10:00:00","extra":true}"#)),
            (Some(r#"{"sku":"1"}"#), Some(r#"{"sku":"1","name":"billy\tbookcase","price":"2.25","currency":"EUR","in_stock":4}"#)),
        ],
    );
    kafka.produce(
        &topic,
        1,
        &[(Some(r#"{"sku":"2"}"#), Some(r#"{"sku":"2","name":"laura","price":10,"currency":"EUR","in_stock":0,"updated_at":null}"#))],
    );
    let out = case.batch("zero_live");
    assert!(out.contains("batch 1 committed"), "{out}");
    assert!(
        out.ends_with("2 staged, 2 inserted, 0 updated, 0 deleted"),
        "{out}"
    );
    assert_eq!(
        case.rows(live),
        "1 billy\tbookcase 2.25 4 -; 2 laura 10.00 0 -"
    );
    assert_eq!(
        case.merge.sql(&format!(
            "SELECT string_agg(partition || ':' || next_offset, ' ' ORDER BY partition) FROM zero_live.ds_kafka_offsets \
             WHERE stream = 'product_db' AND topic = '{topic}'"
        )),
        "0:2 1:1"
    );
    // Read up to the end: the next run finds nothing new.
    let out = case.batch("zero_live");
    assert!(out.contains("nothing new"), "{out}");
    // An update and a delete (a tombstone with a JSON key).
    kafka.produce(
        &topic,
        0,
        &[(
            Some(r#"{"sku":"1"}"#),
            Some(r#"{"sku":"1","name":"billy","price":3,"currency":"EUR","in_stock":5}"#),
        )],
    );
    kafka.produce(&topic, 1, &[(Some(r#"{"sku":"2"}"#), None)]);
    let out = case.batch("zero_live");
    assert!(
        out.ends_with("2 staged, 0 inserted, 1 updated, 1 deleted"),
        "{out}"
    );
    assert_eq!(case.rows(live), "1 billy 3.00 5 -");

    // A value that does not fit its column: the run fails naming where it is, and nothing lands.
    kafka.produce(
        &topic,
        0,
        &[(
            None,
            Some(r#"{"sku":"3","name":"x","price":1,"currency":"EUR","in_stock":"12x"}"#),
        )],
    );
    let out = case.ds(&["merge", "run", "zero_live", "product_db"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = text(&out);
    assert!(
        report.contains(&format!("topic {topic} partition 0")),
        "{report}"
    );
    assert!(report.contains("12x"), "{report}");
    assert_eq!(
        case.merge
            .sql("SELECT count(*) FROM zero_live.product_db__products__landing"),
        "0"
    );
    assert_eq!(
        case.merge.sql(&format!(
            "SELECT next_offset FROM zero_live.ds_kafka_offsets WHERE topic = '{topic}' AND partition = 0"
        )),
        "3"
    );
}
