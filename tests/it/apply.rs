//! `ds apply` against the stack's real PostgreSQL: the quickstart's Postgres part, re-plans, in-place
//! changes, bad credentials, stale saved plans.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tests::{Postgres, TestDatabase};

/// The Postgres kinds: the part of a model this issue applies.
const POSTGRES: [&str; 10] = [
    "--target",
    "postgres_schema",
    "--target",
    "postgres_table",
    "--target",
    "postgres_view",
    "--target",
    "postgres_role",
    "--target",
    "postgres_grant",
];

struct Case {
    _tmp: tempfile::TempDir,
    model: PathBuf,
    state: PathBuf,
    db: TestDatabase,
    prefix: String,
}

impl Drop for Case {
    fn drop(&mut self) {
        // Every role named after this test's workspaces (after the database, which holds their privileges).
        self.db.drop_with_workspace_roles(&self.prefix);
    }
}

impl Case {
    /// A text naming the quickstart's workspaces as this test named them.
    fn n(&self, text: &str) -> String {
        text.replace("ws_analytics", &format!("ws_analytics_{}", self.prefix))
            .replace(
                "ws_directory_job",
                &format!("ws_directory_job_{}", self.prefix),
            )
    }

    /// Runs SQL (naming the workspaces as the quickstart does) in the test's database.
    fn sql(&self, sql: &str) -> String {
        self.db.sql(&self.n(sql))
    }
}

/// The quickstart, pointed at a fresh database of the stack.
fn quickstart(pg: &'static Postgres, prefix: &str) -> Case {
    let db = pg.database(prefix);
    // Unique across concurrent test runs too: role names are cluster-wide.
    let prefix = &format!("{prefix}{}", std::process::id());
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    tests::copy_quickstart(&model, |text| {
        tests::quickstart_workspaces(tests::quickstart_merge_db(text, pg, &db.name), prefix)
    });
    let state = tmp.path().join("state.json");
    Case {
        _tmp: tmp,
        model,
        state,
        db,
        prefix: prefix.to_string(),
    }
}

fn ds(case: &Case, args: &[&str], password: &str) -> Output {
    Command::new(tests::ds_binary())
        .args(args)
        .args([
            "-C",
            case.model.to_str().unwrap(),
            "--state",
            case.state.to_str().unwrap(),
        ])
        .env("NO_COLOR", "1")
        .env("MERGE_RW_USER", &case.db.pg.user)
        .env("MERGE_RW_PASSWORD", password)
        .output()
        .expect("ds runs")
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn apply(case: &Case, extra: &[&str]) -> Output {
    let mut args = vec!["apply", "--auto-approve"];
    args.extend_from_slice(&POSTGRES);
    args.extend_from_slice(extra);
    ds(case, &args, &case.db.pg.password)
}

fn plan(case: &Case) -> Output {
    let mut args = vec!["plan", "--detailed-exitcode"];
    args.extend_from_slice(&POSTGRES);
    ds(case, &args, &case.db.pg.password)
}

#[test]
fn quickstart_applies_then_plans_empty_and_applies_again_without_change() {
    let Some(pg) = tests::postgres() else { return };
    let case = quickstart(pg, "qs");
    let out = apply(&case, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("Apply complete: 52 changed, 0 failed"),
        "{}",
        text(&out)
    );

    // The physical contract of product.md §4.
    let tables = case.sql(
        "SELECT string_agg(table_schema || '.' || table_name, ' ' ORDER BY 1) FROM information_schema.tables \
         WHERE table_schema IN ('zero_live', 'zero_forensic') AND table_type = 'BASE TABLE'",
    );
    for table in [
        "zero_live.customer_db__customers__merge",
        "zero_live.customer_db__customers__staging",
        "zero_live.customer_db__customers__landing",
        "zero_forensic.product_db__products__merge",
        "zero_live.ds_batch_counter",
        "zero_forensic.ds_batch_metrics",
    ] {
        assert!(
            tables.split(' ').any(|t| t == table),
            "{table} missing from {tables}"
        );
    }
    let merge_columns = case.sql(
        "SELECT string_agg(column_name, ',' ORDER BY ordinal_position) FROM information_schema.columns \
         WHERE table_schema = 'zero_forensic' AND table_name = 'customer_db__customers__merge'",
    );
    assert!(
        merge_columns
            .ends_with("ds_surf_key_hash,ds_surf_all_hash,ds_surf_batch_in,ds_surf_batch_out"),
        "{merge_columns}"
    );
    // The reader role reads the views and nothing else.
    let can_read_view = case.sql("SELECT has_table_privilege('ws_analytics_reader', 'ws_analytics.live__customer_db__customers', 'SELECT')");
    let can_read_table = case.sql("SELECT has_table_privilege('ws_analytics_reader', 'zero_live.customer_db__customers__merge', 'SELECT')");
    assert_eq!(
        (can_read_view.as_str(), can_read_table.as_str()),
        ("t", "f")
    );

    let out = plan(&case);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("No changes"), "{}", text(&out));
    let out = apply(&case, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains("created"), "{}", text(&out));
}

fn edit(model: &Path, file: &str, from: &str, to: &str) {
    let path = model.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{file} has no `{from}`");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn compatible_schema_changes_are_applied_in_place_keeping_rows() {
    let Some(pg) = tests::postgres() else { return };
    let case = quickstart(pg, "evolve");
    let out = apply(&case, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let table = "zero_live.product_db__products__merge";
    case.sql(&format!(
        "INSERT INTO {table} (sku, name, price, currency, in_stock, ds_surf_key_hash, ds_surf_all_hash, ds_surf_batch_id) \
         VALUES ('p-1', 'Kettle', 12.50, 'EUR', 3, md5('p-1'), md5('all'), 1)"
    ));
    // A wider type and a new nullable column: updates in place, rows kept.
    edit(
        &case.model,
        "team_shop.ds.hcl",
        "name       = { type = \"varchar(200)\", nullable = false }",
        "name       = { type = \"varchar(400)\", nullable = false }",
    );
    edit(
        &case.model,
        "team_shop.ds.hcl",
        "updated_at = { type = \"timestamp\" }\n        }\n      }\n    }",
        "updated_at = { type = \"timestamp\" }\n          note       = { type = \"text\" }\n        }\n      }\n    }",
    );
    let out = plan(&case);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(!text(&out).contains("-/+"), "{}", text(&out));
    assert!(
        text(&out).contains("~ columns.name.type: \"varchar(200)\" → \"varchar(400)\""),
        "{}",
        text(&out)
    );
    let out = apply(&case, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        case.sql(&format!(
            "SELECT name || '/' || coalesce(note, '-') FROM {table}"
        )),
        "Kettle/-"
    );
    assert_eq!(
        case.sql(
            "SELECT character_maximum_length FROM information_schema.columns \
             WHERE table_schema = 'zero_live' AND table_name = 'product_db__products__merge' AND column_name = 'name'"
        ),
        "400"
    );
    let out = plan(&case);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn a_wrong_password_is_a_clear_error_and_changes_nothing() {
    let Some(pg) = tests::postgres() else { return };
    let case = quickstart(pg, "badpw");
    let mut args = vec!["apply", "--auto-approve"];
    args.extend_from_slice(&POSTGRES);
    let out = ds(&case, &args, "not-the-password-4711");
    assert_eq!(out.status.code(), Some(1));
    let message = text(&out);
    assert!(
        message.contains(&format!(
            "postgres://127.0.0.1:{}/{}",
            pg.port, case.db.name
        )),
        "{message}"
    );
    assert!(
        message.contains("password authentication failed"),
        "{message}"
    );
    assert!(
        !message.contains("not-the-password-4711"),
        "the password leaked: {message}"
    );
    assert!(
        !case.state.exists()
            || state::Backend::read(&state::LocalBackend::new(case.state.clone()))
                .unwrap()
                .unwrap()
                .resources
                .is_empty()
    );
    assert_eq!(
        case.sql("SELECT count(*) FROM pg_namespace WHERE nspname = 'zero_live'"),
        "0"
    );
}

#[test]
fn a_saved_plan_is_refused_once_the_state_changed() {
    let Some(pg) = tests::postgres() else { return };
    let case = quickstart(pg, "stale");
    let plan_file = case.state.with_file_name("plan.json");
    let mut args = vec!["plan", "--out", plan_file.to_str().unwrap()];
    args.extend_from_slice(&POSTGRES);
    assert_eq!(ds(&case, &args, &pg.password).status.code(), Some(0));
    // Someone applies in between.
    let out = apply(&case, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = ds(&case, &["apply", plan_file.to_str().unwrap()], &pg.password);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("the state changed since the plan"),
        "{}",
        text(&out)
    );
}

#[test]
fn reconcile_reports_drift_precisely_repairs_it_and_then_finds_nothing() {
    let Some(pg) = tests::postgres() else { return };
    let case = quickstart(pg, "drift");
    let out = apply(&case, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    case.sql(
        "DROP VIEW ws_analytics.live__customer_db__addresses; \
         REVOKE SELECT ON ws_analytics.audit__product_db__products FROM ws_analytics_reader; \
         ALTER TABLE zero_live.product_db__products__merge ADD COLUMN hand_made text; \
         DROP OWNED BY ws_directory_job_reader; DROP ROLE ws_directory_job_reader",
    );
    let reconcile = |extra: &[&str]| {
        let mut args = vec!["reconcile", "--detailed-exitcode"];
        args.extend_from_slice(&POSTGRES);
        args.extend_from_slice(extra);
        ds(&case, &args, &pg.password)
    };
    let report = reconcile(&["--dry-run", "--format", "json"]);
    assert_eq!(report.status.code(), Some(2), "{}", text(&report));
    let report: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    let drift: Vec<(String, String)> = report["drift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["address"].as_str().unwrap().to_string(),
                d["what"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (address, what) in [
        (
            "postgres_view.ws_analytics.live__customer_db__addresses",
            "deleted",
        ),
        (
            "postgres_grant.ws_analytics_reader.ws_analytics.audit__product_db__products",
            "deleted",
        ),
        (
            "postgres_table.zero_live.product_db__products__merge",
            "changed",
        ),
        ("postgres_role.ws_directory_job_reader", "deleted"),
    ] {
        let address = case.n(address);
        assert!(
            drift.contains(&(address.clone(), what.to_string())),
            "{address} not reported {what}: {drift:?}"
        );
    }
    let table = report["drift"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["what"] == "changed")
        .unwrap();
    assert!(
        table["attributes"][0]["after"]
            .as_str()
            .unwrap()
            .ends_with(", hand_made text")
    );
    // --dry-run changed nothing.
    assert_eq!(
        case.sql("SELECT count(*) FROM pg_roles WHERE rolname = 'ws_directory_job_reader'"),
        "0"
    );

    let out = reconcile(&[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("Apply complete"), "{}", text(&out));
    assert_eq!(
        case.sql(
            "SELECT has_table_privilege('ws_analytics_reader', 'ws_analytics.audit__product_db__products', 'SELECT') \
             AND has_table_privilege('ws_analytics_reader', 'ws_analytics.live__customer_db__addresses', 'SELECT') \
             AND has_schema_privilege('ws_directory_job_reader', 'ws_directory_job', 'USAGE')"
        ),
        "t"
    );
    assert_eq!(
        case.sql("SELECT count(*) FROM information_schema.columns WHERE column_name = 'hand_made'"),
        "0"
    );
    let again = reconcile(&["--dry-run"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(
        text(&again).contains("No changes. The real systems match the model"),
        "{}",
        text(&again)
    );
}

/// A generated model of about 1,000 Postgres resources, pointed at a fresh database.
fn generated(pg: &'static Postgres, prefix: &str) -> Case {
    let db = pg.database(prefix);
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    let status = Command::new(env!("CARGO"))
        .args([
            "run",
            "--quiet",
            "--release",
            "-p",
            "xtask",
            "--",
            "gen-model",
            "--out",
        ])
        .arg(&model)
        .args([
            "--stores",
            "22",
            "--datasets-per-store",
            "10",
            "--workspaces",
            "12",
        ])
        .current_dir(tests::root())
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let prefix = format!("{prefix}{}", std::process::id());
    edit(
        &model,
        "ecosystem.ds.hcl",
        "    port       = 5432\n    database   = \"datasurface\"",
        &format!(
            "    port       = {}\n    database   = \"{}\"",
            pg.port, db.name
        ),
    );
    // Roles are cluster-wide: this test's workspaces get names of their own.
    for entry in std::fs::read_dir(&model).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("\"ws_", &format!("\"{prefix}_ws_"))).unwrap();
    }
    let state = tmp.path().join("state.json");
    Case {
        _tmp: tmp,
        model,
        state,
        db,
        prefix,
    }
}

/// Starts `ds apply` of the case's Postgres part in the background.
fn spawn_apply(case: &Case, stderr: std::process::Stdio) -> std::process::Child {
    let mut args: Vec<String> = vec!["apply".into(), "--auto-approve".into()];
    args.extend(POSTGRES.iter().map(|s| s.to_string()));
    args.extend([
        "-C".into(),
        case.model.display().to_string(),
        "--state".into(),
        case.state.display().to_string(),
    ]);
    Command::new(tests::ds_binary())
        .args(&args)
        .env("NO_COLOR", "1")
        .env("MERGE_RW_USER", &case.db.pg.user)
        .env("MERGE_RW_PASSWORD", &case.db.pg.password)
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// Waits until the apply has recorded its first resources.
fn wait_for_state(case: &Case) {
    let started = std::time::Instant::now();
    while !case.state.exists() && started.elapsed() < std::time::Duration::from_secs(60) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn an_apply_killed_part_way_leaves_a_readable_state_and_the_next_apply_converges() {
    let Some(pg) = tests::postgres() else { return };
    let case = generated(pg, "crash");
    let mut child = spawn_apply(&case, std::process::Stdio::null());
    // Kill it once it has recorded some resources, before it is done.
    wait_for_state(&case);
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success(), "the apply finished before it was killed");
    let recorded = state::Backend::read(&state::LocalBackend::new(case.state.clone()))
        .expect("the state file is intact")
        .expect("some resources were recorded");
    assert!(!recorded.resources.is_empty());

    // The next apply takes over the dead process's lock, creates what is missing (and nothing twice).
    let out = apply(&case, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("Taking over the lock"),
        "{}",
        text(&out)
    );
    let after = state::Backend::read(&state::LocalBackend::new(case.state.clone()))
        .unwrap()
        .unwrap();
    assert_eq!(after.resources.len(), 1006);
    assert_eq!(
        case.sql(
            "SELECT count(*) FROM pg_tables WHERE schemaname IN ('zero_live', 'zero_forensic')"
        ),
        after
            .resources
            .iter()
            .filter(|r| r.kind == "postgres_table")
            .count()
            .to_string()
    );
    let out = plan(&case);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn an_apply_while_another_holds_the_lock_fails_naming_the_holder() {
    let Some(pg) = tests::postgres() else { return };
    let case = quickstart(pg, "locked");
    let backend = state::LocalBackend::new(case.state.clone());
    let holder = state::LockRequest {
        operation: "apply".into(),
        who: "alice@build-7".into(),
        pid: 4242,
        lease: std::time::Duration::from_secs(600),
    };
    let guard = state::Backend::lock(&backend, &holder).unwrap();
    let out = apply(&case, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let message = text(&out);
    assert!(
        message.contains("alice@build-7")
            && message.contains("4242")
            && message.contains("expires"),
        "{message}"
    );
    assert_eq!(
        case.sql("SELECT count(*) FROM pg_namespace WHERE nspname = 'zero_live'"),
        "0"
    );
    drop(guard);
    let out = apply(&case, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn apply_asks_and_without_a_terminal_refuses_unless_auto_approved() {
    let Some(pg) = tests::postgres() else { return };
    let case = quickstart(pg, "ask");
    let mut args = vec!["apply"];
    args.extend_from_slice(&POSTGRES);
    let out = ds(&case, &args, &pg.password);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(
            "not applying without confirmation: stdin is not a terminal; pass `--auto-approve`"
        ),
        "{}",
        text(&out)
    );
    // It showed the plan first, and changed nothing.
    assert!(text(&out).contains("ds will perform these actions"));
    assert_eq!(
        case.sql("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'zero_%'"),
        "0"
    );
}

#[test]
fn import_adopts_an_existing_table_and_the_plan_shows_only_real_differences() {
    let Some(pg) = tests::postgres() else { return };
    let case = quickstart(pg, "import");
    // A table made by hand where the model wants the products merge table, with one column narrower.
    case.sql(
        "CREATE SCHEMA zero_live; CREATE TABLE zero_live.product_db__products__merge (\
           sku varchar(32) NOT NULL PRIMARY KEY, name varchar(100) NOT NULL, price numeric(10,2) NOT NULL, \
           currency char(3) NOT NULL, in_stock integer NOT NULL, updated_at timestamp, \
           ds_surf_key_hash char(32) NOT NULL, ds_surf_all_hash char(32) NOT NULL, ds_surf_batch_id integer NOT NULL); \
         INSERT INTO zero_live.product_db__products__merge VALUES ('p-1', 'Kettle', 1, 'EUR', 1, NULL, md5('a'), md5('b'), 1)",
    );
    let address = "postgres_table.zero_live.product_db__products__merge";
    let out = ds(
        &case,
        &["import", address, "zero_live.product_db__products__merge"],
        &pg.password,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let again = ds(&case, &["import", address], &pg.password);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again).contains("already in the state"),
        "{}",
        text(&again)
    );

    let out = ds(
        &case,
        &["plan", "--format", "json", "--target", address],
        &pg.password,
    );
    let plan: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    let change = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["address"] == address)
        .unwrap();
    assert_eq!(change["action"], "update", "{change}");
    let paths: Vec<&str> = change["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["columns.name.type"]);
    // The row is kept through the in-place widening.
    let out = apply(&case, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        case.sql("SELECT name FROM zero_live.product_db__products__merge"),
        "Kettle"
    );
}

#[test]
fn state_in_postgres_applies_locks_and_refuses_stale_writes() {
    let Some(pg) = tests::postgres() else { return };
    let case = quickstart(pg, "pgstate");
    edit(
        &case.model,
        "ecosystem.ds.hcl",
        "state       = { backend = \"local\", path = \".ds/state.json\" }",
        "state       = { backend = \"postgres\" }",
    );
    let run = |args: &[&str]| {
        Command::new(tests::ds_binary())
            .args(args)
            .args(["-C", case.model.to_str().unwrap()])
            .env("NO_COLOR", "1")
            .env("MERGE_RW_USER", &pg.user)
            .env("MERGE_RW_PASSWORD", &pg.password)
            .output()
            .unwrap()
    };
    let mut apply_args = vec!["apply", "--auto-approve"];
    apply_args.extend_from_slice(&POSTGRES);
    let out = run(&apply_args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        case.sql("SELECT name || ':' || (serial > 0) FROM ds_state.state"),
        "local:true"
    );
    assert!(!case.model.join(".ds/state.json").exists());
    let mut plan_args = vec!["plan", "--detailed-exitcode"];
    plan_args.extend_from_slice(&POSTGRES);
    let out = run(&plan_args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let listed = run(&["state", "list"]);
    assert_eq!(String::from_utf8_lossy(&listed.stdout).lines().count(), 52);

    // The lease: another holder makes an apply fail naming it.
    let target = || state::PostgresTarget {
        host: pg.host.clone(),
        port: pg.port,
        database: case.db.name.clone(),
        user: pg.user.clone(),
        password: pg.password.clone(),
        name: "local".into(),
    };
    let other = state::PostgresBackend::connect(target()).unwrap();
    let holder = state::LockRequest {
        operation: "apply".into(),
        who: "bob@ci-runner".into(),
        pid: 777,
        lease: std::time::Duration::from_secs(600),
    };
    let guard = state::Backend::lock(&other, &holder).unwrap();
    // (An apply with nothing to do takes no lock; forgetting a resource does.)
    let role = case.n("postgres_role.ws_analytics_reader");
    let out = run(&["state", "rm", &role]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("bob@ci-runner") && text(&out).contains("777"),
        "{}",
        text(&out)
    );
    drop(guard);

    // Two writers that read the same state: only one wins.
    let one = state::PostgresBackend::connect(target()).unwrap();
    let two = state::PostgresBackend::connect(target()).unwrap();
    let mut a = state::Backend::read(&one).unwrap().unwrap();
    let mut b = state::Backend::read(&two).unwrap().unwrap();
    a.remove(&role);
    b.remove(&case.n("postgres_role.ws_directory_job_reader"));
    state::Backend::write(&one, &mut a).unwrap();
    let stale = state::Backend::write(&two, &mut b).unwrap_err();
    assert!(matches!(stale, state::StateError::Stale { .. }), "{stale}");
}

#[test]
fn removing_a_workspace_deletes_its_objects_and_a_forced_replace_rebuilds_a_table() {
    let Some(pg) = tests::postgres() else { return };
    let case = quickstart(pg, "lifecycle");
    let out = apply(&case, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // Delete: the transformer workspace leaves the model; its schema, views, role and grants go, in reverse
    // dependency order.
    let team = case.model.join("team_shop.ds.hcl");
    let text_before = std::fs::read_to_string(&team).unwrap();
    let start = text_before
        .find(&format!("  workspace \"directory_job_{}\"", case.prefix))
        .unwrap();
    let end = text_before[start..].find("\n  }\n").unwrap() + start + "\n  }\n".len();
    std::fs::write(
        &team,
        format!("{}{}", &text_before[..start], &text_before[end..]),
    )
    .unwrap();
    // Its output store is still consumed by `analytics`: keep the model valid by dropping that sink too.
    let text_now = std::fs::read_to_string(&team).unwrap();
    let sink = text_now
        .lines()
        .find(|l| l.contains("sink \"directory\""))
        .map(str::to_string);
    if let Some(sink) = sink {
        std::fs::write(&team, text_now.replace(&format!("{sink}\n"), "")).unwrap();
    }
    // The transformer's output store goes too: its tables hold data, so the apply is refused until allowed.
    let refused = apply(&case, &[]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        text(&refused).contains("would destroy data in 2 protected resource(s)"),
        "{}",
        text(&refused)
    );
    let out = apply(
        &case,
        &[
            "--allow-destroy",
            "postgres_table.zero_live.directory__customer_directory__merge",
            "--allow-destroy",
            "postgres_table.zero_live.directory__customer_directory__staging",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("- deleted"), "{}", text(&out));
    assert_eq!(
        case.sql("SELECT count(*) FROM pg_namespace WHERE nspname = 'ws_directory_job'"),
        "0"
    );
    assert_eq!(
        case.sql("SELECT count(*) FROM pg_roles WHERE rolname = 'ws_directory_job_reader'"),
        "0"
    );
    // Replace: forced, and allowed for this protected table only; it is rebuilt empty, its view with it.
    let table = "zero_live.customer_db__customers__merge";
    let first = case.sql(&format!(
        "SELECT column_name FROM information_schema.columns WHERE table_schema || '.' || table_name = '{table}' ORDER BY ordinal_position LIMIT 1"
    ));
    let address = format!("postgres_table.{table}");
    let refused = apply(&case, &["--replace", &address]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    let out = apply(&case, &["--replace", &address, "--allow-destroy", &address]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("-/+ replaced {address}")),
        "{}",
        text(&out)
    );
    assert_eq!(
        case.sql(&format!(
            "SELECT column_name FROM information_schema.columns WHERE table_schema || '.' || table_name = '{table}' ORDER BY ordinal_position LIMIT 1"
        )),
        first
    );
    assert_eq!(
        case.sql("SELECT count(*) FROM pg_views WHERE schemaname = 'ws_analytics' AND viewname = 'live__customer_db__customers'"),
        "1"
    );
    let out = plan(&case);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn postgres_down_is_a_clear_error_naming_the_endpoint() {
    let Some(pg) = tests::postgres() else { return };
    let case = quickstart(pg, "down");
    edit(
        &case.model,
        "ecosystem.ds.hcl",
        &format!("port       = {}", pg.port),
        "port       = 1",
    );
    let out = apply(&case, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let message = text(&out);
    assert!(
        message.contains(&format!("postgres://127.0.0.1:1/{}", case.db.name)),
        "{message}"
    );
    assert!(
        !message.contains(&pg.password),
        "the password leaked: {message}"
    );
    assert!(!case.state.exists(), "the state was written");
}

#[test]
fn reconcile_with_an_interval_reports_once_a_pass_until_stopped() {
    let Some(pg) = tests::postgres() else { return };
    let case = quickstart(pg, "interval");
    assert_eq!(apply(&case, &[]).status.code(), Some(0));
    let mut args: Vec<String> = vec![
        "reconcile".into(),
        "--dry-run".into(),
        "--interval".into(),
        "1s".into(),
    ];
    args.extend(POSTGRES.iter().map(|s| s.to_string()));
    args.extend([
        "-C".into(),
        case.model.display().to_string(),
        "--state".into(),
        case.state.display().to_string(),
    ]);
    let mut child = Command::new(tests::ds_binary())
        .args(&args)
        .env("NO_COLOR", "1")
        .env("MERGE_RW_USER", &pg.user)
        .env("MERGE_RW_PASSWORD", &pg.password)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read its reports as they come: two passes, however busy the machine is (up to 60 s).
    let reader = {
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut seen = String::new();
            let mut passes = 0;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if line.contains("No changes. The real systems match the model") {
                    passes += 1;
                }
                seen.push_str(&line);
                seen.push('\n');
                if passes == 2 {
                    break;
                }
            }
            (passes, seen)
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !reader.is_finished() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let (passes, stdout) = reader.join().unwrap();
    assert_eq!(passes, 2, "{passes} passes: {stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Next pass in 1s"));
    let bad = ds(&case, &["reconcile", "--interval", "soon"], &pg.password);
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad).contains("--interval `soon`"), "{}", text(&bad));
}

#[test]
fn ctrl_c_stops_new_work_waits_for_what_runs_and_saves_the_state() {
    let Some(pg) = tests::postgres() else { return };
    let case = generated(pg, "sigint");
    let child = spawn_apply(&case, std::process::Stdio::piped());
    wait_for_state(&case);
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("Interrupted: waiting for the changes in flight"),
        "{stderr}"
    );
    assert!(stderr.contains("Apply cancelled"), "{stderr}");
    // The state holds everything that finished, and the lock is released: the next apply needs no takeover.
    let recorded = state::Backend::read(&state::LocalBackend::new(case.state.clone()))
        .unwrap()
        .unwrap();
    assert!(
        !recorded.resources.is_empty() && recorded.resources.len() < 1006,
        "{}",
        recorded.resources.len()
    );
    let out = apply(&case, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        !text(&out).contains("Taking over the lock"),
        "{}",
        text(&out)
    );
    let done = state::Backend::read(&state::LocalBackend::new(case.state.clone()))
        .unwrap()
        .unwrap();
    assert_eq!(done.resources.len(), 1006);
}

#[test]
fn a_hand_edited_plan_with_malformed_attributes_is_refused_before_any_change() {
    let Some(pg) = tests::postgres() else { return };
    let case = quickstart(pg, "edited");
    let plan_file = case.state.with_file_name("plan.json");
    let mut args = vec!["plan", "--out", plan_file.to_str().unwrap()];
    args.extend_from_slice(&POSTGRES);
    assert_eq!(ds(&case, &args, &pg.password).status.code(), Some(0));
    let mut saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&plan_file).unwrap()).unwrap();
    let table = saved["changes"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|c| c["type"] == "postgres_table")
        .unwrap();
    table["after"]["columns"] = serde_json::json!("id intger not null");
    let address = table["address"].as_str().unwrap().to_string();
    std::fs::write(&plan_file, serde_json::to_vec(&saved).unwrap()).unwrap();
    let out = ds(&case, &["apply", plan_file.to_str().unwrap()], &pg.password);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "`{address}` cannot be applied: column `id intger not null` has no known type"
        )),
        "{}",
        text(&out)
    );
    assert_eq!(
        case.sql("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'zero_%'"),
        "0"
    );
}

#[test]
fn the_publication_and_slot_of_a_cdc_store_apply_refresh_repair_and_delete() {
    let Some(pg) = tests::postgres() else { return };
    let case = quickstart(pg, "cdcsrc");
    // The producer's database, with the tables the cdc store captures.
    let source = pg.database("shop");
    source.sql("CREATE TABLE public.customers (id integer PRIMARY KEY); CREATE TABLE public.addresses (id integer PRIMARY KEY)");
    edit(
        &case.model,
        "team_shop.ds.hcl",
        &format!("port     = {}\n          database = \"shop\"", 55432),
        &format!(
            "port     = {}\n          database = \"{}\"",
            pg.port, source.name
        ),
    );
    // Slot names are cluster-wide: the store gets a name of its own (as does everything named after it).
    let store = format!("cdb{}", case.prefix);
    for entry in std::fs::read_dir(&case.model).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("customer_db", &store)).unwrap();
    }
    let slot_name = &format!("ds_{store}");
    let kinds = [
        "--target",
        "debezium_publication",
        "--target",
        "debezium_slot",
    ];
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&kinds);
        Command::new(tests::ds_binary())
            .args(&all)
            .args([
                "-C",
                case.model.to_str().unwrap(),
                "--state",
                case.state.to_str().unwrap(),
            ])
            .env("NO_COLOR", "1")
            .env("SHOP_DB_USER", &pg.user)
            .env("SHOP_DB_PASSWORD", &pg.password)
            .output()
            .unwrap()
    };
    let out = run(&["apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        source.sql(&format!("SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_publication_tables WHERE pubname = '{slot_name}'")),
        format!("addresses,customers,ds_{store}_signal")
    );
    assert_eq!(
        source.sql(&format!(
            "SELECT plugin FROM pg_replication_slots WHERE slot_name = '{slot_name}'"
        )),
        "pgoutput"
    );
    let out = run(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // Drift: the slot dropped and a table left out of the publication by hand; reconcile puts both back.
    source.sql(&format!("SELECT pg_drop_replication_slot('{slot_name}')"));
    source.sql(&format!(
        "ALTER PUBLICATION {slot_name} SET TABLE public.customers"
    ));
    let out = run(&["reconcile", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("- debezium_slot.{store}   (deleted outside ds)")),
        "{}",
        text(&out)
    );
    assert_eq!(
        source.sql(&format!(
            "SELECT count(*) FROM pg_publication_tables WHERE pubname = '{slot_name}'"
        )),
        "3"
    );
    assert_eq!(
        source.sql(&format!(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{slot_name}'"
        )),
        "1"
    );
    // The slot holds data (changes not yet read): deleting it needs consent; then the slot goes first, so it
    // does not pin WAL, then the publication.
    // Nothing consumes the cdc store any more (its sinks and the transformer that read it are gone), so nothing
    // ingests it.
    let team = case.model.join("team_shop.ds.hcl");
    let text_now = std::fs::read_to_string(&team).unwrap();
    let start = text_now
        .find(&format!("  workspace \"directory_job_{}\"", case.prefix))
        .unwrap();
    let end = text_now[start..].find("\n  }\n").unwrap() + start + "\n  }\n".len();
    let without: String = format!("{}{}", &text_now[..start], &text_now[end..])
        .lines()
        .filter(|l| !l.contains(&format!("sink \"{store}\"")) && !l.contains("sink \"directory\""))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&team, without).unwrap();
    let refused = run(&["apply", "--auto-approve"]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    let out = run(&[
        "apply",
        "--auto-approve",
        "--allow-destroy",
        &format!("debezium_slot.{store}"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        source.sql(&format!(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{slot_name}'"
        )),
        "0"
    );
    assert_eq!(
        source.sql(&format!(
            "SELECT count(*) FROM pg_publication WHERE pubname = '{slot_name}'"
        )),
        "0"
    );
}
