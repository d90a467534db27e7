//! Faults of the object store during an apply (issue 9), on an S3 server of the test's own that the test
//! stops and starts again (`tests::OwnS3`), with the quickstart's Postgres objects in a database of the
//! test's own:
//! - a bucket to create while the server is stopped: the Postgres changes are made and recorded, the bucket
//!   fails naming the endpoint, and with the server back the next apply creates only the bucket;
//! - the state kept in S3 and the server stopped while an apply runs (held up by a lock in PostgreSQL until
//!   the server is gone): the changes are made, the state cannot be written, so it is saved to
//!   `ds-errored.state.json`; the state in S3 does not know what was made; with the server back `ds state push`
//!   records the saved file and the plan is empty;
//! - two applies at once on the state in S3: the second is refused naming the first's lock, and only the
//!   first writes.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use tests::{OwnS3, TestBucket, TestDatabase};

const POSTGRES_KINDS: [&str; 5] = [
    "postgres_schema",
    "postgres_table",
    "postgres_view",
    "postgres_role",
    "postgres_grant",
];

struct Case {
    tmp: tempfile::TempDir,
    model: PathBuf,
    merge: TestDatabase,
    tag: String,
    bucket: String,
    state_in_s3: bool,
    /// The bucket `state` (made by the first apply when the state is in S3).
    state: TestBucket,
    own: OwnS3,
}

impl Drop for Case {
    fn drop(&mut self) {
        self.merge.drop_with_workspace_roles(&self.tag);
    }
}

impl Case {
    /// The quickstart on the test's database and S3 server, with one bucket and (`state_in_s3`) its state
    /// in the object `state.json` of the bucket `state`, a bucket of the model too.
    fn new(short: &str, state_in_s3: bool) -> Option<Case> {
        let pg = tests::postgres()?;
        let own = OwnS3::start()?;
        let tag = format!("{short}{}", std::process::id());
        let merge = pg.database(&format!("{tag}m"));
        let bucket = format!("ds-fault-{short}");
        let tmp = tempfile::tempdir().unwrap();
        let model = tmp.path().join("model");
        tests::copy_quickstart(&model, |text| {
            let text = tests::quickstart_workspaces(
                tests::quickstart_merge_db(
                    tests::quickstart_without_archive(text),
                    pg,
                    &merge.name,
                ),
                &tag,
            )
            .replace("bucket \"ds-archive\"", &format!("bucket \"{bucket}\""))
            .replace("http://127.0.0.1:9000", &own.s3.endpoint);
            if state_in_s3 {
                // The state bucket is a bucket of the model; the first apply makes it to lock the state.
                text.replace(
                    "state       = { backend = \"local\", path = \".ds/state.json\" }",
                    "state       = { backend = \"s3\", bucket = \"state\", key = \"state.json\" }",
                )
                .replace(
                    &format!("bucket \"{bucket}\""),
                    &format!("bucket \"state\" {{\n      versioning = true\n    }}\n    bucket \"{bucket}\""),
                )
            } else {
                text
            }
        });
        let ecosystem = std::fs::read_to_string(model.join("ecosystem.ds.hcl")).unwrap();
        assert!(ecosystem.contains(&format!("bucket \"{bucket}\"")));
        assert_eq!(ecosystem.contains("backend = \"s3\""), state_in_s3);
        let case = Case {
            tmp,
            model,
            merge,
            tag,
            bucket,
            state_in_s3,
            state: TestBucket::new(&own.s3, "state".into(), false),
            own,
        };
        Some(case)
    }

    /// The state in the object `state.json` of the bucket `state`, if the server has it.
    fn state_object(&self) -> Option<state::State> {
        let body = self.state.object("state.json")?;
        Some(state::parse(&body, std::path::Path::new("state.json")).unwrap())
    }

    /// `ds <args>` in the test's directory, with the quickstart's Postgres kinds and the bucket as targets
    /// for `plan` and `apply`.
    fn command(&self, args: &[&str]) -> Command {
        let pg = self.merge.pg;
        let mut command = Command::new(tests::ds_binary());
        command.args(args);
        if matches!(args.first(), Some(&"plan") | Some(&"apply")) {
            for kind in POSTGRES_KINDS {
                command.args(["--target", kind]);
            }
            command.args(["--target", &format!("s3_bucket.{}", self.bucket)]);
            if self.state_in_s3 {
                command.args(["--target", "s3_bucket.state"]);
            }
        }
        command
            .args(["-C", self.model.to_str().unwrap()])
            .current_dir(self.tmp.path())
            .env("NO_COLOR", "1")
            .env("MERGE_RW_USER", &pg.user)
            .env("MERGE_RW_PASSWORD", &pg.password)
            .env("OBJECT_STORE_USER", &self.own.s3.access_key)
            .env("OBJECT_STORE_PASSWORD", &self.own.s3.secret_key);
        command
    }

    fn ds(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("ds runs")
    }
}

impl Case {
    /// Adds a workspace to the model (a schema, a view over a merge table, a role and grants to make);
    /// returns its name.
    fn add_workspace(&self) -> String {
        let team = self.model.join("team_shop.ds.hcl");
        let workspace = format!("extra_{}", self.tag);
        let text = std::fs::read_to_string(&team).unwrap();
        let anchor = "  # A transformer: a SQL query";
        assert!(text.contains(anchor));
        std::fs::write(
            &team,
            text.replace(
                anchor,
                &format!(
                    "  workspace \"{workspace}\" {{\n    dataset_group \"live\" {{\n      requirements = {{ milestoning = \"LIVE_ONLY\", latency = \"MINUTES\" }}\n      sink \"product_db\" \"products\" {{}}\n    }}\n  }}\n\n{anchor}"
                ),
            ),
        )
        .unwrap();
        workspace
    }

    /// Whether a session of the merge database meets `condition` (SQL over `pg_stat_activity`).
    fn sessions(&self, condition: &str) -> bool {
        self.merge.sql(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND {condition}"
        )) != "0"
    }

    /// Waits up to `seconds` for `condition` (as `sessions`), failing with `what` and the sessions.
    fn wait_for(&self, condition: &str, seconds: u64, what: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
        while !self.sessions(condition) {
            assert!(
                std::time::Instant::now() < deadline,
                "{what}: {}",
                self.merge.sql(
                    "SELECT string_agg(coalesce(wait_event_type, '-') || ' ' || left(query, 120), E'\n') \
                     FROM pg_stat_activity WHERE datname = current_database()"
                )
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

/// A psql session that has created a schema and not committed: an apply's `CREATE SCHEMA` of the same name
/// waits for it, holding the state lock, until it is released (rolled back).
struct SchemaHold {
    psql: std::process::Child,
    stdin: std::process::ChildStdin,
}

impl SchemaHold {
    fn new(case: &Case, schema: &str) -> SchemaHold {
        let pg = case.merge.pg;
        let mut psql = Command::new("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", &pg.host, "-p", &pg.port.to_string(), "-U", &pg.user])
            .arg(&case.merge.name)
            .env("PGPASSWORD", &pg.password)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("psql runs");
        let mut stdin = psql.stdin.take().unwrap();
        stdin
            .write_all(format!("BEGIN;\nCREATE SCHEMA {schema};\n").as_bytes())
            .unwrap();
        stdin.flush().unwrap();
        case.wait_for(
            "state = 'idle in transaction' AND query ILIKE 'CREATE SCHEMA%'",
            30,
            "the schema was not created",
        );
        SchemaHold { psql, stdin }
    }

    /// `ds apply --auto-approve`, started and waited for until it waits on the schema.
    fn apply_waiting(&self, case: &Case) -> std::process::Child {
        let apply = case
            .command(&["apply", "--auto-approve"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ds runs");
        case.wait_for(
            "wait_event_type = 'Lock' AND query ILIKE 'CREATE SCHEMA%'",
            60,
            "the apply did not reach the new schema",
        );
        apply
    }

    /// Rolls the schema back: the waiting apply goes on.
    fn release(mut self) {
        self.stdin.write_all(b"ROLLBACK;\n").unwrap();
        drop(self.stdin);
        self.psql.wait().unwrap();
    }
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn a_bucket_to_create_while_the_server_is_stopped_fails_alone_and_the_next_apply_makes_it() {
    let Some(mut case) = Case::new("bkt", false) else {
        return;
    };
    case.own.stop();
    let state_file = case.model.join(".ds/state.json");
    let out = case.ds(&["apply", "--auto-approve"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains(&format!("failed: s3_bucket.{}", case.bucket))
            && all.contains(&case.own.s3.endpoint)
            && all.contains("is the S3 server running?"),
        "{all}"
    );
    assert!(!all.contains(&case.own.s3.secret_key));
    // The Postgres objects were made and recorded; the bucket is not in the state.
    let recorded =
        state::parse(&std::fs::read(&state_file).unwrap(), &state_file).expect("a readable state");
    assert!(
        recorded
            .resources
            .iter()
            .any(|r| r.address.starts_with("postgres_view.")),
        "{recorded:?}"
    );
    assert!(
        !recorded.resources.iter().any(|r| r.kind == "s3_bucket"),
        "{recorded:?}"
    );
    assert_eq!(
        case.merge
            .sql("SELECT count(*) > 0 FROM pg_views WHERE schemaname LIKE 'ws\\_%'"),
        "t"
    );

    case.own.resume();
    let out = case.ds(&["apply", "--auto-approve"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(all.contains("Apply complete: 1 changed"), "{all}");
    let out = case.ds(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn an_apply_whose_s3_state_backend_stops_saves_its_state_for_ds_state_push() {
    let Some(mut case) = Case::new("st", true) else {
        return;
    };
    // No state bucket yet: a plan sees no state, and the first apply makes the bucket (versioned) to hold it.
    let out = case.ds(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(case.state_object().is_none());
    let out = case.ds(&["apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let before = case.state_object().expect("the state in S3");
    assert!(before.resource("s3_bucket.state").is_some());
    let versioning = case
        .state
        .runtime
        .block_on(
            case.state
                .client
                .get_bucket_versioning()
                .bucket("state")
                .send(),
        )
        .unwrap();
    assert_eq!(
        versioning.status(),
        Some(&providers::s3::sdk::types::BucketVersioningStatus::Enabled)
    );

    let workspace = case.add_workspace();
    let hold = SchemaHold::new(&case, &format!("ws_{workspace}"));
    let apply = hold.apply_waiting(&case);
    // The apply holds the state lock and is making changes: the S3 server stops, then the schema may go on.
    case.own.stop();
    hold.release();
    let out = apply.wait_with_output().unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("the changes were made, but the state could not be written")
            && all.contains("ds state push ds-errored.state.json")
            && all.contains(&case.own.s3.endpoint)
            && all.contains("is the S3 server running?"),
        "{all}"
    );
    assert!(!all.contains(&case.own.s3.secret_key));
    let errored = case.tmp.path().join("ds-errored.state.json");
    let saved = state::parse(&std::fs::read(&errored).unwrap(), &errored).unwrap();
    let new_view = format!("postgres_view.ws_{workspace}.live__product_db__products");
    assert!(saved.resource(&new_view).is_some(), "{saved:?}");
    assert_eq!(
        case.merge.sql(&format!(
            "SELECT count(*) FROM pg_views WHERE schemaname = 'ws_{workspace}'"
        )),
        "1"
    );

    // The server back: the state there does not know the new view (made after the server stopped).
    case.own.resume();
    let stored = case.state_object().unwrap();
    assert!(stored.resource(&new_view).is_none());
    assert_eq!(stored.lineage, before.lineage);
    let out = case.ds(&["state", "push", "ds-errored.state.json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stored = case.state_object().unwrap();
    assert!(stored.serial > before.serial);
    assert!(stored.resource(&new_view).is_some());
    // Pushing it again is refused: the state moved since the file was made.
    let out = case.ds(&["state", "push", "ds-errored.state.json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("was written since"), "{}", text(&out));
    let out = case.ds(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// Two applies at once on the s3 state backend: the second is refused at once naming the first (its lock),
/// writes nothing and changes nothing; the first finishes and writes the state once.
#[test]
fn two_applies_at_once_on_the_s3_state_backend_never_both_write() {
    let Some(case) = Case::new("two", true) else {
        return;
    };
    let out = case.ds(&["apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let before = case.state_object().expect("the state in S3");

    let workspace = case.add_workspace();
    let hold = SchemaHold::new(&case, &format!("ws_{workspace}"));
    let first = hold.apply_waiting(&case);
    // The first apply holds the lock (it waits on the schema): the second is refused, naming it.
    let out = case.ds(&["apply", "--auto-approve"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("s3://state/state.json")
            && all.contains("is locked by")
            && all.contains(&format!("pid {}", first.id())),
        "{all}"
    );
    assert_eq!(case.state_object().unwrap().serial, before.serial);
    hold.release();
    let out = first.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let after = case.state_object().unwrap();
    assert_eq!(after.lineage, before.lineage);
    assert!(after.serial > before.serial);
    assert!(
        after
            .resource(&format!("postgres_schema.ws_{workspace}"))
            .is_some()
    );
    let out = case.ds(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}
