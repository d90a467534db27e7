//! The `s3` state backend against the stack's real S3 server (MinIO): a write round-trips; of two writers
//! that read the same version only the first wins (a conditional put); a held lock names its holder; an
//! expired lock is taken over; and `ds apply` on a model whose platform keeps its state in s3.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use state::{Backend, LockRequest, S3Backend, S3Target, State, StateError};
use tests::{S3, TestBucket};

/// A bucket of this test (removed, with every object, when the test ends) and a backend on one key of it.
struct Case {
    s3: &'static S3,
    bucket: TestBucket,
}

impl std::ops::Deref for Case {
    type Target = TestBucket;
    fn deref(&self) -> &TestBucket {
        &self.bucket
    }
}

impl Case {
    fn new(short: &str) -> Option<Case> {
        let s3 = tests::s3()?;
        let bucket = TestBucket::new(s3, format!("ds-state-{short}-{}", std::process::id()), true);
        Some(Case { s3, bucket })
    }

    fn backend(&self, key: &str) -> S3Backend {
        S3Backend::connect(S3Target {
            endpoint: self.s3.endpoint.clone(),
            region: self.s3.region.clone(),
            access_key: self.s3.access_key.clone(),
            secret_key: self.s3.secret_key.clone(),
            bucket: self.name.clone(),
            key: key.to_string(),
        })
        .unwrap()
    }
}

fn resource(address: &str) -> state::ResourceState {
    serde_json::from_value(json!({
        "address": address, "type": "postgres_schema", "provider": "postgres",
        "attributes": {"name": address},
    }))
    .unwrap()
}

#[test]
fn write_then_read_round_trips() {
    let Some(case) = Case::new("rt") else { return };
    let backend = case.backend("env/state.json");
    assert!(backend.read().unwrap().is_none());
    assert!(backend.lock_info().unwrap().is_none());

    let mut state = State::new();
    state.resources.push(resource("postgres_schema.a"));
    backend.write(&mut state).unwrap();
    assert_eq!(state.serial, 1);
    let back = backend.read().unwrap().expect("a state");
    assert_eq!(back.serial, 1);
    assert_eq!(back.lineage, state.lineage);
    assert_eq!(back.resources, state.resources);
    // The object is the same document a local state file holds.
    let stored = case.object("env/state.json").expect("the state object");
    assert_eq!(stored, state::to_bytes(&back));

    // An unchanged state writes nothing; a changed one the next serial.
    let mut again = back.clone();
    backend.write(&mut again).unwrap();
    assert_eq!(again.serial, 1);
    again.resources.push(resource("postgres_schema.b"));
    backend.write(&mut again).unwrap();
    assert_eq!(backend.read().unwrap().unwrap().serial, 2);
    assert!(
        backend
            .describe()
            .contains(&format!("s3://{}/env/state.json", case.name)),
        "{}",
        backend.describe()
    );
}

#[test]
fn second_writer_of_the_same_version_is_stale() {
    let Some(case) = Case::new("stale") else {
        return;
    };
    let one = case.backend("state.json");
    let two = case.backend("state.json");

    // Both start from nothing: the first creates, the second (If-None-Match: *) is refused.
    let mut first = State::new();
    first.resources.push(resource("postgres_schema.a"));
    let mut second = first.clone();
    second.resources.push(resource("postgres_schema.b"));
    one.write(&mut first).unwrap();
    let error = two.write(&mut second).unwrap_err();
    assert!(matches!(error, StateError::Stale { .. }), "{error:?}");
    assert_eq!(second.serial, 0, "a refused write leaves the serial alone");

    // Both read serial 1; the first writes serial 2; the second's write is refused, naming bucket and key.
    let mut a = one.read().unwrap().unwrap();
    let mut b = two.read().unwrap().unwrap();
    a.resources.push(resource("postgres_schema.c"));
    b.resources.push(resource("postgres_schema.d"));
    one.write(&mut a).unwrap();
    let error = two.write(&mut b).unwrap_err();
    let message = error.to_string();
    assert_eq!(
        message,
        format!(
            "`s3://{}/state.json` changed since it was read (another ds wrote serial 2; serial 1 was read); \
             nothing was written: run the command again",
            case.name
        )
    );
    let stored = one.read().unwrap().unwrap();
    assert_eq!(stored.serial, 2);
    assert!(
        stored
            .resources
            .iter()
            .any(|r| r.address == "postgres_schema.c")
    );
    assert!(
        !stored
            .resources
            .iter()
            .any(|r| r.address == "postgres_schema.d")
    );
}

#[test]
fn held_lock_refuses_a_second_locker_and_names_its_holder() {
    let Some(case) = Case::new("lock") else {
        return;
    };
    let backend = case.backend("state.json");
    let other = case.backend("state.json");
    let guard = backend
        .lock(&LockRequest::new("apply", "alice@host-1"))
        .unwrap();
    let stored: state::LockInfo =
        serde_json::from_slice(&case.object("state.json.lock").expect("the lock object")).unwrap();
    assert_eq!(stored.id, guard.id());

    let error = other
        .lock(&LockRequest::new("plan", "bob@host-2"))
        .unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, StateError::Locked { .. }), "{error:?}");
    assert!(
        message.starts_with(&format!(
            "`s3://{}/state.json` is locked by alice@host-1 (ds apply, pid {})",
            case.name,
            std::process::id()
        )),
        "{message}"
    );
    assert!(message.contains("the lease expires at"), "{message}");
    assert!(
        message.contains(&format!("ds state unlock {}", guard.id())),
        "{message}"
    );

    // A writer that does not hold the lock is refused; the holder writes.
    let mut state = State::new();
    let error = other.write(&mut state).unwrap_err();
    assert!(matches!(error, StateError::Locked { .. }), "{error:?}");
    backend.write(&mut state).unwrap();

    // Renewal keeps it; release removes the object.
    guard.renew().unwrap();
    guard.release().unwrap();
    assert!(case.object("state.json.lock").is_none());
    assert!(other.lock_info().unwrap().is_none());
    let again = other.lock(&LockRequest::new("plan", "bob@host-2")).unwrap();
    // Breaking with the wrong id is refused; with the right one it removes the lock.
    let error = backend.force_unlock(Some("nope")).unwrap_err();
    assert!(
        matches!(error, StateError::LockMismatch { .. }),
        "{error:?}"
    );
    let broken = backend.force_unlock(Some(&again.id())).unwrap().unwrap();
    assert_eq!(broken.who, "bob@host-2");
    let error = again.renew().unwrap_err();
    assert!(matches!(error, StateError::LockLost { .. }), "{error:?}");
}

#[test]
fn expired_lock_is_taken_over() {
    let Some(case) = Case::new("expired") else {
        return;
    };
    let backend = case.backend("state.json");
    let other = case.backend("state.json");
    let old = backend
        .lock(&LockRequest::new("apply", "alice@host-1").with_lease(Duration::from_millis(300)))
        .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let new = other
        .lock(&LockRequest::new("apply", "bob@host-2"))
        .unwrap();
    let stored = other.lock_info().unwrap().unwrap();
    assert_eq!(stored.id, new.id());
    assert_eq!(stored.who, "bob@host-2");

    // The old holder has lost it: renewing says who has it now; releasing leaves the new lock alone.
    let error = old.renew().unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, StateError::LockLost { .. }), "{error:?}");
    assert!(
        message.contains("it is now held by bob@host-2"),
        "{message}"
    );
    drop(old);
    assert_eq!(other.lock_info().unwrap().unwrap().id, new.id());

    // A corrupt lock object is named, and `force_unlock(None)` removes it.
    drop(new);
    case.put("state.json.lock", b"not json".to_vec());
    let error = backend
        .lock(&LockRequest::new("apply", "alice@host-1"))
        .unwrap_err();
    assert!(matches!(error, StateError::LockCorrupt { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .contains(&format!("s3://{}/state.json.lock", case.name)),
        "{error}"
    );
    assert!(backend.force_unlock(None).unwrap().is_none());
    assert!(case.object("state.json.lock").is_none());
}

/// `ds apply --target s3_bucket.<archive>` on the quickstart whose platform keeps its state in s3: the
/// state object holds the bucket afterwards, no lock is left, and a plan right after is empty.
#[test]
fn apply_keeps_its_state_in_s3() {
    let Some(case) = Case::new("e2e") else { return };
    let archive = TestBucket::new(
        case.s3,
        format!("ds-state-e2e-archive-{}", std::process::id()),
        false,
    );
    let archive = &archive.name;
    let tmp = tempfile::tempdir().unwrap();
    let model: PathBuf = tmp.path().join("model");
    let state_line = format!(
        "state       = {{ backend = \"s3\", bucket = \"{}\", key = \"platforms/local.json\" }}",
        case.name
    );
    tests::copy_quickstart(&model, |text| {
        // The state bucket is one of the platform's buckets (the test made it already; only the archive
        // bucket is applied).
        tests::quickstart_without_archive(text)
            .replace(
                "bucket \"ds-archive\"",
                &format!("bucket \"{}\" {{}}\n    bucket \"{archive}\"", case.name),
            )
            .replace("http://127.0.0.1:9000", &case.s3.endpoint)
            .replace(
                "state       = { backend = \"local\", path = \".ds/state.json\" }",
                &state_line,
            )
    });
    let ecosystem = std::fs::read_to_string(model.join("ecosystem.ds.hcl")).unwrap();
    assert!(
        ecosystem.contains(&state_line),
        "the quickstart's state line moved"
    );
    let ds = |args: &[&str]| {
        let out = Command::new(tests::ds_binary())
            .args(args)
            .args(["--target", &format!("s3_bucket.{archive}")])
            .args(["-C", model.to_str().unwrap()])
            .env("NO_COLOR", "1")
            .env("OBJECT_STORE_USER", &case.s3.access_key)
            .env("OBJECT_STORE_PASSWORD", &case.s3.secret_key)
            .output()
            .expect("ds runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    let (code, text) = ds(&["apply", "--auto-approve"]);
    assert_eq!(code, Some(0), "{text}");
    let stored = case
        .object("platforms/local.json")
        .expect("the state object");
    let stored = state::parse(&stored, std::path::Path::new("s3")).unwrap();
    assert!(
        stored
            .resources
            .iter()
            .any(|r| r.address == format!("s3_bucket.{archive}")),
        "{stored:?}"
    );
    assert!(
        case.object("platforms/local.json.lock").is_none(),
        "the lock is released"
    );
    let (code, text) = ds(&["plan", "--detailed-exitcode"]);
    assert_eq!(code, Some(0), "{text}");
}
