//! Kafka Connect and Debezium against the stack's real services: change events from a producer's database
//! to the landing tables, incremental snapshots of added datasets, out-of-band deletes and failures repaired
//! or reported by `ds reconcile`, destroy order, and the generic connector's conformance cycle.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tests::{Connect, ConnectorsOf, Postgres, TestDatabase, eventually};

/// Kinds no provider applies yet.
const NOT_YET: [&str; 4] = ["--exclude", "s3_bucket", "--exclude", "scheduler_job"];

const CUSTOMERS: &str = "CREATE TABLE public.customers (id bigint PRIMARY KEY, first_name varchar(100) NOT NULL, \
     last_name varchar(100) NOT NULL, email varchar(320), date_of_birth date, loyalty_tier smallint, \
     is_active boolean NOT NULL, created_at timestamptz NOT NULL)";
const ADDRESSES: &str = "CREATE TABLE public.addresses (id bigint PRIMARY KEY, customer_id bigint NOT NULL, \
     line1 varchar(200) NOT NULL, city varchar(100) NOT NULL, postal_code varchar(20), \
     country_code char(2) NOT NULL, is_primary boolean NOT NULL)";

/// The quickstart with stores, workspaces and connectors of its own (Connect and roles are shared by every
/// test), a merge database and a source database.
struct Pipeline {
    connect: &'static Connect,
    tmp: tempfile::TempDir,
    model: PathBuf,
    state: PathBuf,
    merge: TestDatabase,
    source: TestDatabase,
    /// Unique to the test: in store, workspace and so connector, topic and slot names.
    tag: String,
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        // Connectors first (they hold the slot), then the databases, then the cluster-wide roles.
        drop(ConnectorsOf(self.connect, self.tag.clone()));
        self.source.drop_with_workspace_roles(&self.tag);
        self.merge.drop_with_workspace_roles(&self.tag);
    }
}

fn services(short: &str) -> Option<(&'static Postgres, &'static Connect, String)> {
    let pg = tests::postgres()?;
    let connect = tests::connect()?;
    Some((pg, connect, format!("{short}{}", std::process::id())))
}

impl Pipeline {
    fn new(pg: &'static Postgres, connect: &'static Connect, tag: String) -> Pipeline {
        let merge = pg.database(&format!("{tag}m"));
        let source = pg.database(&format!("{tag}s"));
        let tmp = tempfile::tempdir().unwrap();
        let model = tmp.path().join("model");
        tests::copy_quickstart(&model, |text| {
            tests::quickstart_without_archive(tests::quickstart_for(
                text,
                pg,
                &merge.name,
                &source.name,
                &tag,
            ))
            .replace("http://127.0.0.1:8083", &connect.url)
            .replace("customer_db", &format!("cdb_{tag}"))
            .replace("product_db", &format!("pdb_{tag}"))
        });
        let state = tmp.path().join("state.json");
        Pipeline {
            connect,
            tmp,
            model,
            state,
            merge,
            source,
            tag,
        }
    }

    fn ds(&self, args: &[&str]) -> Output {
        self.command(args)
            .args(["--state", self.state.to_str().unwrap()])
            .output()
            .expect("ds runs")
    }

    /// `ds <args> -C <model>` with the credentials.
    fn command(&self, args: &[&str]) -> Command {
        let pg = self.merge.pg;
        let mut command = Command::new(tests::ds_binary());
        command
            .args(args)
            .args(["-C", self.model.to_str().unwrap()])
            .env("NO_COLOR", "1")
            .env("MERGE_RW_USER", &pg.user)
            .env("MERGE_RW_PASSWORD", &pg.password)
            .env("SHOP_DB_USER", &pg.user)
            .env("SHOP_DB_PASSWORD", &pg.password);
        command
    }

    /// `ds <command> <args> --exclude (kinds no provider applies yet)`.
    fn run(&self, command: &str, args: &[&str]) -> Output {
        let mut all = vec![command];
        all.extend_from_slice(args);
        all.extend_from_slice(&NOT_YET);
        self.ds(&all)
    }

    fn edit(&self, file: &str, from: &str, to: &str) {
        let path = self.model.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{file} has no `{from}`");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    }

    /// `op:id` of each event in a landing table, in landing order. Delivery is at least once (a task
    /// restarted by a rebalance sends again from its last committed offset): a row repeating an event
    /// already landed (same operation, key and source LSN) is counted once, where it first landed, as the
    /// merge counts it.
    fn landed(&self, platform: &str, dataset: &str) -> String {
        self.merge.sql(&format!(
            "SELECT coalesce(string_agg(op || ':' || id, ',' ORDER BY first), '') FROM ( \
               SELECT __op AS op, id, min(ds_landing_id) AS first \
               FROM {platform}.cdb_{}__{dataset}__landing GROUP BY __op, id, __lsn) events",
            self.tag
        ))
    }
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn cdc_events_land_in_order_new_datasets_snapshot_and_reconcile_repairs_and_reports() {
    let Some((pg, connect, tag)) = services("e2e") else {
        return;
    };
    let p = Pipeline::new(pg, connect, tag.clone());
    p.source.sql(CUSTOMERS);
    p.source.sql(ADDRESSES);
    p.source
        .sql("INSERT INTO customers VALUES (1, 'Ada', 'Lovelace', 'ada@example.com', NULL, 2, true, now())");

    let out = p.run("apply", &["--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let source_name = format!("ds-cdb_{tag}-source");
    for name in [
        source_name.clone(),
        format!("ds-zero_live-cdb_{tag}-sink"),
        format!("ds-zero_forensic-cdb_{tag}-sink"),
    ] {
        let status = connect.status(&name).expect("the connector exists");
        assert_eq!(status["connector"]["state"], "RUNNING", "{name}: {status}");
    }
    // Secrets reach Connect as references the worker resolves, never as values.
    let (_, config) = connect.call("GET", &format!("/connectors/{source_name}/config"), None);
    assert_eq!(config["database.password"], "${env:SHOP_DB_PASSWORD}");
    let state = std::fs::read_to_string(&p.state).unwrap();
    assert!(!state.contains(&pg.password), "the state holds a password");

    // Insert, update and delete, one transaction each: every event lands, in order, in both platforms'
    // landing tables (one source feeds both).
    p.source
        .sql("INSERT INTO customers VALUES (2, 'Bob', 'Byte', NULL, NULL, NULL, true, now())");
    p.source
        .sql("UPDATE customers SET email = 'ada@lovelace.org' WHERE id = 1");
    p.source.sql("DELETE FROM customers WHERE id = 2");
    let want = "r:1,c:2,u:1,d:2";
    let started = Instant::now();
    assert_eq!(
        eventually(30, want, || p.landed("zero_live", "customers")),
        want
    );
    assert_eq!(
        eventually(30, want, || p.landed("zero_forensic", "customers")),
        want
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(
        p.merge.sql(&format!(
            "SELECT email || ' ' || __deleted || ' ' || (__lsn > 0) || ' ' || (__source_ts_ms > 0) \
             FROM zero_live.cdb_{tag}__customers__landing WHERE __op = 'u'"
        )),
        "ada@lovelace.org false true true"
    );
    assert_eq!(
        p.merge.sql(&format!(
            "SELECT __deleted FROM zero_live.cdb_{tag}__customers__landing WHERE __op = 'd'"
        )),
        "true"
    );
    // One slot on the source database for the store, however many platforms ingest it.
    assert_eq!(
        p.source.sql(&format!(
            "SELECT string_agg(slot_name, ',') FROM pg_replication_slots WHERE database = '{}'",
            p.source.name
        )),
        format!("ds_cdb_{tag}")
    );
    let out = p.run("plan", &["--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "ok debezium_slot.cdb_{tag}: slot ds_cdb_{tag} is read and retains"
        )),
        "{}",
        text(&out)
    );

    // A dataset added to the store: its table's existing rows arrive by an incremental snapshot, and the
    // other tables are not sent again.
    p.source.sql(
        "CREATE TABLE public.orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL, total numeric(10,2)); \
         INSERT INTO orders VALUES (1, 1, 10.50), (2, 1, 20.00), (3, 1, 30.25)",
    );
    p.edit(
        "team_shop.ds.hcl",
        "    dataset \"addresses\" {",
        "    dataset \"orders\" {\n      classifications = [\"PUB\"]\n      table {\n        columns = {\n          \
         id          = { type = \"bigint\", nullable = false, primary_key = true }\n          \
         customer_id = { type = \"bigint\", nullable = false }\n          \
         total       = { type = \"decimal(10,2)\" }\n        }\n      }\n    }\n\n    dataset \"addresses\" {",
    );
    let out = p.run("apply", &["--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("~ updated debezium_source.cdb_{tag}")),
        "{}",
        text(&out)
    );
    let want = "r:1,r:2,r:3";
    assert_eq!(
        eventually(30, want, || p.landed("zero_live", "orders")),
        want
    );
    p.source
        .sql("INSERT INTO customers VALUES (3, 'Cy', 'Cyan', NULL, NULL, NULL, true, now())");
    let want = "r:1,c:2,u:1,d:2,c:3";
    assert_eq!(
        eventually(30, want, || p.landed("zero_live", "customers")),
        want
    );

    // The source connector deleted out of band: reconcile creates it again, and it resumes from the slot,
    // so changes made meanwhile arrive.
    let (status, _) = connect.call("DELETE", &format!("/connectors/{source_name}"), None);
    assert_eq!(status, 204);
    p.source
        .sql("INSERT INTO customers VALUES (4, 'Di', 'Dune', NULL, NULL, NULL, true, now())");
    let out = p.run("reconcile", &["--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "- debezium_source.cdb_{tag}   (deleted outside ds)"
        )),
        "{}",
        text(&out)
    );
    let want = "r:1,c:2,u:1,d:2,c:3,c:4";
    assert_eq!(
        eventually(30, want, || p.landed("zero_live", "customers")),
        want
    );

    // A task fails (its publication dropped by hand): plan and reconcile report it with the reason.
    p.source.sql(&format!("DROP PUBLICATION ds_cdb_{tag}"));
    p.source
        .sql("INSERT INTO customers VALUES (5, 'Ed', 'Edge', NULL, NULL, NULL, true, now())");
    connect.wait_status(&source_name, 60, |s| s["tasks"][0]["state"] == "FAILED");
    let out = p.run("reconcile", &["--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let report = text(&out);
    assert!(
        report.contains(&format!(
            "FAILED debezium_source.cdb_{tag}: connector {source_name}: task 0 FAILED:"
        )),
        "{report}"
    );
    assert!(
        report.contains("Publication autocreation is disabled, please create one"),
        "{report}"
    );
    assert!(
        report.contains(&format!("Healed debezium_source.cdb_{tag}")),
        "{report}"
    );
}

#[test]
fn destroying_a_cdc_store_removes_connector_slot_and_publication_in_that_order() {
    let Some((pg, connect, tag)) = services("gone") else {
        return;
    };
    let p = Pipeline::new(pg, connect, tag.clone());
    p.source.sql(CUSTOMERS);
    p.source.sql(ADDRESSES);
    let out = p.run("apply", &["--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(connect.connectors(&tag).len(), 3);

    p.source
        .sql("INSERT INTO customers VALUES (1, 'Ada', 'Lovelace', NULL, NULL, NULL, true, now())");
    // Streamed (the initial snapshot found the table empty).
    assert_eq!(
        eventually(30, "c:1", || p.landed("zero_live", "customers")),
        "c:1"
    );

    // Nothing consumes the store any more: its ingestion goes, the slot and tables with consent.
    let team = p.model.join("team_shop.ds.hcl");
    let now = std::fs::read_to_string(&team).unwrap();
    let before = now.clone();
    let start = now
        .find(&format!("  workspace \"directory_job_{tag}\""))
        .unwrap();
    let end = now[start..].find("\n  }\n").unwrap() + start + "\n  }\n".len();
    let without: String = format!("{}{}", &now[..start], &now[end..])
        .lines()
        .filter(|l| {
            !l.contains(&format!("sink \"cdb_{tag}\"")) && !l.contains("sink \"directory\"")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&team, without).unwrap();
    let out = p.run(
        "apply",
        &[
            "--auto-approve",
            "--allow-destroy",
            "debezium_slot",
            "--allow-destroy",
            "postgres_table",
            "--parallelism",
            "1",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report = text(&out);
    let at = |what: &str| {
        report
            .find(&format!("- deleted {what}"))
            .unwrap_or_else(|| panic!("no `- deleted {what}` in {report}"))
    };
    let (source, slot, publication) = (
        at(&format!("debezium_source.cdb_{tag}")),
        at(&format!("debezium_slot.cdb_{tag}")),
        at(&format!("debezium_publication.cdb_{tag}")),
    );
    assert!(source < slot && slot < publication, "{report}");
    assert!(connect.connectors(&tag).is_empty());
    assert_eq!(
        p.source.sql(&format!(
            "SELECT count(*) FROM pg_replication_slots WHERE database = '{}'",
            p.source.name
        )),
        "0"
    );
    assert_eq!(p.source.sql("SELECT count(*) FROM pg_publication"), "0");
    let out = p.run("plan", &["--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // Consumed again: the connector of the same name starts afresh (its old offsets were forgotten, they
    // would point into the dropped slot) and snapshots the table into the new landing tables.
    std::fs::write(&team, before).unwrap();
    let out = p.run("apply", &["--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        eventually(30, "r:1", || p.landed("zero_live", "customers")),
        "r:1"
    );
}

#[test]
fn a_sink_connector_is_created_repaired_after_drift_and_deleted() {
    let Some((pg, connect, tag)) = services("kcc") else {
        return;
    };
    let p = Pipeline::new(pg, connect, tag.clone());
    p.source.sql(CUSTOMERS);
    p.source.sql(ADDRESSES);
    // The cdc store's sink on the live platform: a connector like any (the generic `kafka_connect_connector`
    // IO that every connector resource shares).
    let team = p.model.join("team_shop.ds.hcl");
    let name = format!("ds-zero_live-cdb_{tag}-sink");
    let address = format!("debezium_sink.zero_live.cdb_{tag}");
    let running =
        |s: &Value| s["connector"]["state"] == "RUNNING" && s["tasks"][0]["state"] == "RUNNING";

    // Create.
    let out = p.run("apply", &["--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("+ created {address}")),
        "{}",
        text(&out)
    );
    connect.wait_status(&name, 30, running);
    let (_, config) = connect.call("GET", &format!("/connectors/{name}/config"), None);
    assert!(
        config["topics"]
            .as_str()
            .is_some_and(|t| t.contains(".public.customers")),
        "{config}"
    );
    assert_eq!(config["connection.password"], "${env:MERGE_RW_PASSWORD}");
    let out = p.run("plan", &["--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // Config drift made through the REST API: reported, and put back by reconcile.
    let mut drifted = config.clone();
    drifted["tasks.max"] = json!("2");
    drifted["errors.tolerance"] = json!("all");
    let (status, _) = connect.call("PUT", &format!("/connectors/{name}/config"), Some(&drifted));
    assert_eq!(status, 200);
    let out = p.run("plan", &["--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let report = text(&out);
    assert!(
        report.contains(&format!("~ {address}   (changed outside ds)")),
        "{report}"
    );
    assert!(
        report.contains("config.tasks.max: \"1\" → \"2\""),
        "{report}"
    );
    let out = p.run("reconcile", &["--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let (_, repaired) = connect.call("GET", &format!("/connectors/{name}/config"), None);
    assert_eq!(repaired, config);
    connect.wait_status(&name, 30, running);

    // Paused by hand: reported as drift and resumed.
    let (status, _) = connect.call("PUT", &format!("/connectors/{name}/pause"), None);
    assert_eq!(status, 202);
    connect.wait_status(&name, 30, |s| s["connector"]["state"] == "PAUSED");
    let out = p.run("reconcile", &["--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("paused: true → false"),
        "{}",
        text(&out)
    );
    connect.wait_status(&name, 30, running);

    // Deleted by hand: created again.
    let (status, _) = connect.call("DELETE", &format!("/connectors/{name}"), None);
    assert_eq!(status, 204);
    let out = p.run("reconcile", &["--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    connect.wait_status(&name, 30, running);

    // Connect down (the recorded cluster does not answer): plan fails fast, naming the endpoint.
    let state = std::fs::read_to_string(&p.state).unwrap();
    let down = p.tmp.path().join("down.json");
    std::fs::write(&down, state.replace(&connect.url, "http://127.0.0.1:9")).unwrap();
    let started = Instant::now();
    let out = Command::new(tests::ds_binary())
        .args([
            "plan",
            "-C",
            p.model.to_str().unwrap(),
            "--state",
            down.to_str().unwrap(),
        ])
        .env("MERGE_RW_USER", &pg.user)
        .env("MERGE_RW_PASSWORD", &pg.password)
        .env("SHOP_DB_USER", &pg.user)
        .env("SHOP_DB_PASSWORD", &pg.password)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert!(
        text(&out).contains("http://127.0.0.1:9/connectors/"),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("cannot reach Kafka Connect"),
        "{}",
        text(&out)
    );
    // And apply, creating a connector there (a state without it), fails fast the same way.
    p.edit("ecosystem.ds.hcl", &connect.url, "http://127.0.0.1:9");
    let fresh = p.tmp.path().join("fresh.json");
    let mut without_sink: Value = serde_json::from_str(&state).unwrap();
    without_sink["resources"]
        .as_array_mut()
        .unwrap()
        .retain(|r| r["address"] != address.as_str());
    std::fs::write(&fresh, without_sink.to_string()).unwrap();
    let started = Instant::now();
    let out = Command::new(tests::ds_binary())
        .args(["apply", "--auto-approve", "--target", &address])
        .args([
            "-C",
            p.model.to_str().unwrap(),
            "--state",
            fresh.to_str().unwrap(),
        ])
        .env("MERGE_RW_USER", &pg.user)
        .env("MERGE_RW_PASSWORD", &pg.password)
        .env("SHOP_DB_USER", &pg.user)
        .env("SHOP_DB_PASSWORD", &pg.password)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert!(
        text(&out).contains("http://127.0.0.1:9/connector-plugins/"),
        "{}",
        text(&out)
    );
    p.edit("ecosystem.ds.hcl", "http://127.0.0.1:9", &connect.url);

    // Out of the model (nothing consumes the store; the transformer reading it goes too): deleted.
    let now = std::fs::read_to_string(&team).unwrap();
    let start = now
        .find(&format!("  workspace \"directory_job_{tag}\""))
        .unwrap();
    let end = now[start..].find("\n  }\n").unwrap() + start + "\n  }\n".len();
    let without: String = format!("{}{}", &now[..start], &now[end..])
        .lines()
        .filter(|l| {
            !l.contains(&format!("sink \"cdb_{tag}\"")) && !l.contains("sink \"directory\"")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&team, without).unwrap();
    let out = p.run(
        "apply",
        &[
            "--auto-approve",
            "--allow-destroy",
            "debezium_slot",
            "--allow-destroy",
            "postgres_table",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("- deleted {address}")),
        "{}",
        text(&out)
    );
    assert!(connect.status(&name).is_none());
}

/// Change events merged: `ds merge run` moves the landed events into a batch (conflating several changes
/// of one key to the last), applies inserts, updates and deletes, live and forensic, and the workspace
/// views show them.
#[test]
fn cdc_events_merge_into_live_and_history_views() {
    let Some((pg, connect, tag)) = services("cdm") else {
        return;
    };
    let p = Pipeline::new(pg, connect, tag.clone());
    p.source.sql(CUSTOMERS);
    p.source.sql(ADDRESSES);
    let out = p.run("apply", &["--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let merge = |platform: &str| {
        let out = p
            .command(&["merge", "run", platform, &format!("cdb_{tag}")])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let ws = format!("ws_analytics_{tag}");
    let live = format!(
        "SELECT coalesce(string_agg(id || ' ' || first_name || ' ' || coalesce(email, '-'), '; ' ORDER BY id), '') \
         FROM {ws}.live__cdb_{tag}__customers"
    );
    let history = format!(
        "SELECT string_agg(id || ' ' || coalesce(email, '-') || ' ' || ds_surf_batch_in || '-' || \
         CASE WHEN ds_surf_batch_out = 2147483647 THEN 'live' ELSE ds_surf_batch_out::text END, '; ' \
         ORDER BY id, ds_surf_batch_in) FROM {ws}.audit__cdb_{tag}__customers__history"
    );

    p.source
        .sql("INSERT INTO customers VALUES (1, 'Ada', 'L', 'a@x', NULL, NULL, true, now())");
    p.source
        .sql("INSERT INTO customers VALUES (2, 'Bob', 'B', NULL, NULL, NULL, true, now())");
    assert_eq!(
        eventually(30, "c:1,c:2", || p.landed("zero_live", "customers")),
        "c:1,c:2"
    );
    assert_eq!(
        eventually(30, "c:1,c:2", || p.landed("zero_forensic", "customers")),
        "c:1,c:2"
    );
    let out = merge("zero_live");
    assert!(out.contains("batch 1 committed"), "{out}");
    assert!(
        out.ends_with("2 staged, 2 inserted, 0 updated, 0 deleted"),
        "{out}"
    );
    merge("zero_forensic");
    assert_eq!(p.merge.sql(&live), "1 Ada a@x; 2 Bob -");
    // The landing tables were emptied into the batch.
    assert_eq!(p.landed("zero_live", "customers"), "");
    let out = merge("zero_live");
    assert!(out.contains("nothing new since batch 1"), "{out}");

    // Several changes of one key in one batch are conflated to the last; a delete deletes.
    p.source
        .sql("UPDATE customers SET email = 'ada@1' WHERE id = 1");
    p.source
        .sql("UPDATE customers SET email = 'ada@2' WHERE id = 1");
    p.source.sql("DELETE FROM customers WHERE id = 2");
    p.source
        .sql("INSERT INTO customers VALUES (3, 'Cy', 'C', NULL, NULL, NULL, true, now())");
    let want = "u:1,u:1,d:2,c:3";
    assert_eq!(
        eventually(30, want, || p.landed("zero_live", "customers")),
        want
    );
    assert_eq!(
        eventually(30, want, || p.landed("zero_forensic", "customers")),
        want
    );
    let out = merge("zero_live");
    assert!(
        out.ends_with("3 staged, 1 inserted, 1 updated, 1 deleted"),
        "{out}"
    );
    let out = merge("zero_forensic");
    assert!(
        out.ends_with("3 staged, 1 inserted, 1 updated, 1 deleted"),
        "{out}"
    );
    assert_eq!(p.merge.sql(&live), "1 Ada ada@2; 3 Cy -");
    assert_eq!(
        p.merge.sql(&history),
        "1 a@x 1-1; 1 ada@2 2-live; 2 - 1-1; 3 - 2-live"
    );
}
