//! The local backend as a caller uses it: files in a temporary directory.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, SystemTime};

use serde_json::json;
use state::{Backend, LocalBackend, LockInfo, LockRequest, ResourceState, State, StateError};

fn resource(address: &str, size: u64) -> ResourceState {
    ResourceState {
        address: address.to_owned(),
        kind: address.split('.').next().unwrap().to_owned(),
        provider: "postgres".to_owned(),
        schema_version: 1,
        attributes: json!({ "name": address, "size": size }),
        dependencies: Vec::new(),
        secret_fingerprints: BTreeMap::new(),
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".ds").join("state.json");
        Fixture { _dir: dir, path }
    }

    fn backend(&self) -> LocalBackend {
        LocalBackend::new(&self.path)
    }

    fn dir(&self) -> &Path {
        self.path.parent().unwrap()
    }

    /// The file names in the state directory, sorted.
    fn files(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    fn text(&self) -> String {
        fs::read_to_string(&self.path).unwrap()
    }

    /// A stored state with one resource, serial 1.
    fn stored(&self) -> State {
        let mut state = State::new();
        state.upsert(resource("postgres_table.a", 1));
        self.backend().write(&mut state).unwrap();
        state
    }
}

fn request(operation: &str, who: &str, lease: Duration) -> LockRequest {
    LockRequest {
        operation: operation.into(),
        who: who.into(),
        pid: 4242,
        lease,
    }
}

const LONG: Duration = Duration::from_secs(600);
const SHORT: Duration = Duration::from_millis(50);

#[test]
fn no_state_reads_as_none() {
    let fx = Fixture::new();
    assert!(fx.backend().read().unwrap().is_none());
    assert!(fx.backend().lock_info().unwrap().is_none());
}

#[test]
fn round_trip() {
    let fx = Fixture::new();
    let backend = fx.backend();
    let mut state = State::new();
    state.model.hash = Some("sha256:00ff".into());
    state.upsert(resource("postgres_table.b", 2));
    let mut secret = resource("postgres_role.a", 1);
    secret
        .secret_fingerprints
        .insert("password".into(), "hmac-sha256:1234".into());
    secret.dependencies = vec!["postgres_table.b".into()];
    state.upsert(secret);
    backend.write(&mut state).unwrap();
    assert_eq!(state.serial, 1);
    let read = backend.read().unwrap().unwrap();
    assert_eq!(read, state);
    // A second backend (another process) reads the same.
    assert_eq!(fx.backend().read().unwrap().unwrap(), state);
    assert_eq!(fx.files(), ["state.json"]);
}

#[test]
fn serial_bumps_only_on_change() {
    let fx = Fixture::new();
    let backend = fx.backend();
    let mut state = fx.stored();
    assert_eq!(state.serial, 1);
    let before = fx.text();

    backend.write(&mut state).unwrap();
    assert_eq!(state.serial, 1, "an unchanged state is not written");
    assert_eq!(fx.text(), before);
    assert!(
        !backend.backup_path().exists(),
        "nothing was replaced, so nothing was backed up"
    );

    state.upsert(resource("postgres_table.a", 2));
    backend.write(&mut state).unwrap();
    assert_eq!(state.serial, 2);
    assert_eq!(backend.read().unwrap().unwrap().serial, 2);

    state.model.commit = Some("abc123".into());
    backend.write(&mut state).unwrap();
    assert_eq!(state.serial, 3, "the model info is content too");

    // Writing back what was read changes nothing.
    let mut read = backend.read().unwrap().unwrap();
    backend.write(&mut read).unwrap();
    assert_eq!(read.serial, 3);
}

#[test]
fn backup_keeps_the_previous_content() {
    let fx = Fixture::new();
    let backend = fx.backend();
    let mut state = fx.stored();
    let first = fx.text();
    state.upsert(resource("postgres_table.c", 3));
    backend.write(&mut state).unwrap();
    assert_eq!(fs::read_to_string(backend.backup_path()).unwrap(), first);
    let second = fx.text();
    state.remove("postgres_table.a");
    backend.write(&mut state).unwrap();
    assert_eq!(fs::read_to_string(backend.backup_path()).unwrap(), second);
    assert_eq!(
        state::parse(second.as_bytes(), backend.backup_path())
            .unwrap()
            .serial,
        2
    );
    assert_eq!(fx.files(), ["state.json", "state.json.backup"]);
}

#[test]
fn stale_write_refused() {
    let fx = Fixture::new();
    fx.stored();
    let (a, b) = (fx.backend(), fx.backend());
    let mut mine = a.read().unwrap().unwrap();
    let mut theirs = b.read().unwrap().unwrap();
    theirs.upsert(resource("postgres_table.theirs", 1));
    b.write(&mut theirs).unwrap();

    mine.upsert(resource("postgres_table.mine", 1));
    let error = a.write(&mut mine).unwrap_err();
    assert!(matches!(error, StateError::Stale { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!(
            "`{}` changed since it was read (another ds wrote serial 2; serial 1 was read); nothing was written: \
             run the command again",
            fx.path.display()
        )
    );
    assert_eq!(mine.serial, 1, "a refused write leaves the serial alone");
    let stored = a.read().unwrap().unwrap();
    assert!(stored.resource("postgres_table.theirs").is_some());
    assert!(stored.resource("postgres_table.mine").is_none());
}

#[test]
fn stale_write_refused_after_own_writes() {
    // `a` writes twice (its second write recognises its first without parsing); `b` writes in between.
    let fx = Fixture::new();
    let (a, b) = (fx.backend(), fx.backend());
    let mut mine = State::new();
    a.write(&mut mine).unwrap();
    mine.upsert(resource("postgres_table.a", 1));
    a.write(&mut mine).unwrap();
    let mut theirs = b.read().unwrap().unwrap();
    theirs.upsert(resource("postgres_table.b", 1));
    b.write(&mut theirs).unwrap();
    mine.upsert(resource("postgres_table.c", 1));
    let error = a.write(&mut mine).unwrap_err();
    assert!(
        matches!(
            &error,
            StateError::Stale {
                reason: state::Stale::Serial { read: 2, stored: 3 },
                ..
            }
        ),
        "{error:?}"
    );
    // Back to the state `a` wrote: the same content, but it is still `b`'s serial 3 that is stored.
    mine.remove("postgres_table.c");
    assert!(matches!(a.write(&mut mine), Err(StateError::Stale { .. })));
}

#[test]
fn another_lineage_refused() {
    let fx = Fixture::new();
    let stored = fx.stored();
    let mut other = State::new();
    other.serial = 1;
    let error = fx.backend().write(&mut other).unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains(&format!(
            "it now holds another state: lineage {}, not {}",
            stored.lineage, other.lineage
        )),
        "{message}"
    );
}

#[test]
fn corrupt_file_names_path_and_position_and_is_never_overwritten() {
    let fx = Fixture::new();
    fx.stored();
    let corrupt = "{\n  \"version\": 1,\n  \"serial\": 1,\n  \"lineage\": oops\n}\n";
    fs::write(&fx.path, corrupt).unwrap();
    let backend = fx.backend();
    let error = backend.read().unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "`{}` is not valid JSON (expected value at line 4, column 14): repair it, or restore the previous \
             state from its backup",
            fx.path.display()
        )
    );
    let mut state = State::new();
    assert!(matches!(
        backend.write(&mut state).unwrap_err(),
        StateError::Syntax {
            line: 4,
            column: 14,
            ..
        }
    ));
    assert_eq!(fx.text(), corrupt);
    assert_eq!(fx.files(), ["state.json"]);
}

#[test]
fn truncated_file() {
    let fx = Fixture::new();
    let mut state = State::new();
    for i in 0..20 {
        state.upsert(resource(&format!("postgres_table.t{i:02}"), i));
    }
    fx.backend().write(&mut state).unwrap();
    let full = fs::read(&fx.path).unwrap();
    fs::write(&fx.path, &full[..full.len() - 40]).unwrap();
    let error = fx.backend().read().unwrap_err();
    assert!(matches!(error, StateError::Truncated { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.starts_with(&format!("`{}` ends early, at line 2", fx.path.display())),
        "{message}"
    );
    assert!(
        message.ends_with("it is truncated; restore the previous state from its backup"),
        "{message}"
    );
    // An empty file (what an in-place writer leaves after a crash) is truncated too.
    fs::write(&fx.path, "").unwrap();
    assert!(matches!(
        fx.backend().read().unwrap_err(),
        StateError::Truncated {
            line: 1,
            column: 0,
            ..
        }
    ));
}

#[test]
fn newer_version_refused_and_kept() {
    let fx = Fixture::new();
    fs::create_dir_all(fx.dir()).unwrap();
    let newer =
        r#"{"version": 2, "serial": 9, "lineage": "l", "resources": {"in": "a new shape"}}"#;
    fs::write(&fx.path, newer).unwrap();
    let error = fx.backend().read().unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "`{}` was written by a newer ds (state format version 2; this ds reads versions up to 1): upgrade ds",
            fx.path.display()
        )
    );
    let mut state = State::new();
    state.serial = 9;
    state.lineage = "l".into();
    assert!(matches!(
        fx.backend().write(&mut state).unwrap_err(),
        StateError::NewerVersion { version: 2, .. }
    ));
    assert_eq!(fx.text(), newer);
}

#[test]
fn missing_version_refused() {
    let fx = Fixture::new();
    fs::create_dir_all(fx.dir()).unwrap();
    fs::write(
        &fx.path,
        r#"{"serial": 1, "lineage": "l", "resources": []}"#,
    )
    .unwrap();
    let error = fx.backend().read().unwrap_err();
    assert!(matches!(error, StateError::MissingVersion { .. }));
    assert!(error.to_string().contains("has no `version` field"));
}

#[test]
fn duplicate_addresses_refused() {
    let fx = Fixture::new();
    let mut state = State::new();
    state.resources.push(resource("postgres_table.a", 1));
    state.resources.push(resource("postgres_table.a", 2));
    let error = fx.backend().write(&mut state).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "the state in `{}` records `postgres_table.a` twice: keep one of the two entries",
            fx.path.display()
        )
    );
    assert!(!fx.path.exists());
}

#[test]
fn writing_sorts_resources_and_dependencies() {
    let fx = Fixture::new();
    let mut state = State::new();
    let mut b = resource("postgres_table.b", 1);
    b.dependencies = vec!["z.z".into(), "a.a".into(), "a.a".into()];
    state.resources.push(b);
    state.resources.push(resource("postgres_table.a", 1));
    fx.backend().write(&mut state).unwrap();
    let read = fx.backend().read().unwrap().unwrap();
    assert_eq!(read.resources[0].address, "postgres_table.a");
    assert_eq!(read.resources[1].dependencies, ["a.a", "z.z"]);
    assert_eq!(read, state);
}

#[test]
fn lock_held_refuses_a_second_lock_naming_the_holder() {
    let fx = Fixture::new();
    let first = fx
        .backend()
        .lock(&request("apply", "alice@host", LONG))
        .unwrap();
    let info = first.info();
    let error = fx
        .backend()
        .lock(&request("plan", "bob@laptop", LONG))
        .unwrap_err();
    let StateError::Locked { info: holder, .. } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(**holder, info);
    assert_eq!(
        error.to_string(),
        format!(
            "`{}` is locked by alice@host (ds apply, pid 4242) since {}; the lease expires at {}: wait, or run \
             `ds state unlock {}` if that process is gone",
            fx.path.display(),
            humantime::format_rfc3339_seconds(info.created),
            humantime::format_rfc3339_seconds(info.expires),
            info.id
        )
    );
    // The same backend cannot take it twice either: a lock is not reentrant.
    assert!(matches!(
        fx.backend().lock(&request("apply", "alice@host", LONG)),
        Err(StateError::Locked { .. })
    ));
    assert_eq!(fx.backend().lock_info().unwrap().unwrap(), info);
}

#[test]
fn lock_released_on_drop() {
    let fx = Fixture::new();
    let backend = fx.backend();
    {
        let _guard = backend.lock(&request("apply", "alice@host", LONG)).unwrap();
        assert!(backend.lock_path().exists());
    }
    assert!(!backend.lock_path().exists());
    let guard = backend.lock(&request("plan", "bob@laptop", LONG)).unwrap();
    guard.release().unwrap();
    assert!(!backend.lock_path().exists());
    assert!(fx.files().is_empty(), "{:?}", fx.files());
}

#[test]
fn lock_file_is_readable_json() {
    let fx = Fixture::new();
    let guard = fx
        .backend()
        .lock(&request("state rm", "alice@host", LONG))
        .unwrap();
    let text = fs::read_to_string(fx.backend().lock_path()).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["id"], guard.id());
    assert_eq!(value["operation"], "state rm");
    assert_eq!(value["who"], "alice@host");
    assert_eq!(value["pid"], 4242);
    assert!(value["created"].as_str().unwrap().ends_with('Z'));
    assert!(value["expires"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn expired_lease_taken_over() {
    let fx = Fixture::new();
    let old = fx
        .backend()
        .lock(&request("apply", "alice@host", SHORT))
        .unwrap();
    thread::sleep(SHORT * 2);
    let new = fx
        .backend()
        .lock(&request("apply", "bob@laptop", LONG))
        .unwrap();
    assert_eq!(fx.backend().lock_info().unwrap().unwrap().who, "bob@laptop");

    // The old holder finds out when it renews, and its release leaves the new lock alone.
    let error = old.renew().unwrap_err();
    let StateError::LockLost {
        holder: Some(holder),
        ..
    } = &error
    else {
        panic!("{error:?}")
    };
    assert_eq!(holder.id, new.id());
    assert!(
        error
            .to_string()
            .starts_with(&format!("lost the lock on `{}`", fx.path.display())),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("it is now held by bob@laptop (ds apply, pid 4242)"),
        "{error}"
    );
    drop(old);
    assert_eq!(fx.backend().lock_info().unwrap().unwrap().id, new.id());
    drop(new);
    assert!(fx.files().is_empty(), "{:?}", fx.files());
}

#[test]
fn renew_extends_the_lease() {
    let fx = Fixture::new();
    let lease = Duration::from_millis(1000);
    let guard = fx
        .backend()
        .lock(&request("apply", "alice@host", lease))
        .unwrap();
    let first = guard.info().expires;
    thread::sleep(Duration::from_millis(700));
    let renewed = guard.renew().unwrap();
    assert!(renewed.expires > first);
    assert_eq!(renewed.id, guard.id());
    assert_eq!(fx.backend().lock_info().unwrap().unwrap(), renewed);
    thread::sleep(Duration::from_millis(700));
    // Past the first expiry, but within the renewed lease.
    assert!(SystemTime::now() > first);
    assert!(matches!(
        fx.backend().lock(&request("plan", "bob", LONG)),
        Err(StateError::Locked { .. })
    ));
}

#[test]
fn renew_after_unlock_is_lost() {
    let fx = Fixture::new();
    let guard = fx
        .backend()
        .lock(&request("apply", "alice@host", LONG))
        .unwrap();
    fx.backend().force_unlock(None).unwrap();
    let error = guard.renew().unwrap_err();
    assert!(
        matches!(error, StateError::LockLost { holder: None, .. }),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("the lock was removed (`ds state unlock`?)"),
        "{error}"
    );
}

#[test]
fn force_unlock_with_wrong_id_refused() {
    let fx = Fixture::new();
    let backend = fx.backend();
    let guard = backend.lock(&request("apply", "alice@host", LONG)).unwrap();
    let error = fx.backend().force_unlock(Some("not-the-id")).unwrap_err();
    assert!(
        matches!(error, StateError::LockMismatch { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&format!(
            "is locked with id {}, not not-the-id: nothing was unlocked",
            guard.id()
        )),
        "{message}"
    );
    assert!(backend.lock_path().exists());

    let removed = fx
        .backend()
        .force_unlock(Some(&guard.id()))
        .unwrap()
        .unwrap();
    assert_eq!(removed, guard.info());
    assert!(!backend.lock_path().exists());
    assert_eq!(fx.backend().force_unlock(Some(&guard.id())).unwrap(), None);
}

#[test]
fn force_unlock_without_id_removes_any_lock() {
    let fx = Fixture::new();
    let guard = fx
        .backend()
        .lock(&request("apply", "alice@host", LONG))
        .unwrap();
    assert_eq!(
        fx.backend().force_unlock(None).unwrap().unwrap().id,
        guard.id()
    );
    assert_eq!(fx.backend().force_unlock(None).unwrap(), None);
    // Another process can lock now; the old guard's drop leaves that lock alone.
    let other = fx
        .backend()
        .lock(&request("apply", "bob@laptop", LONG))
        .unwrap();
    drop(guard);
    assert_eq!(fx.backend().lock_info().unwrap().unwrap().id, other.id());
}

#[test]
fn corrupt_lock_file() {
    let fx = Fixture::new();
    let backend = fx.backend();
    fs::create_dir_all(fx.dir()).unwrap();
    fs::write(backend.lock_path(), "{\"id\": ").unwrap();
    let error = backend
        .lock(&request("apply", "alice@host", LONG))
        .unwrap_err();
    assert!(matches!(error, StateError::LockCorrupt { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!(
            "lock file `{}` is not valid (EOF while parsing a value at line 1 column 7): if no ds is using the \
             state, remove it with `ds state unlock`",
            backend.lock_path().display()
        )
    );
    assert!(matches!(
        backend.force_unlock(Some("x")),
        Err(StateError::LockCorrupt { .. })
    ));
    assert_eq!(backend.force_unlock(None).unwrap(), None);
    assert!(!backend.lock_path().exists());
    backend.lock(&request("apply", "alice@host", LONG)).unwrap();
}

#[test]
fn write_refused_while_someone_else_holds_the_lock() {
    let fx = Fixture::new();
    let mut state = fx.stored();
    let holder = fx.backend();
    let lease = Duration::from_millis(500);
    let guard = holder.lock(&request("apply", "alice@host", lease)).unwrap();

    let other = fx.backend();
    state.upsert(resource("postgres_table.b", 1));
    let error = other.write(&mut state).unwrap_err();
    assert!(matches!(error, StateError::Locked { .. }), "{error:?}");
    assert_eq!(state.serial, 1);

    // The holder writes.
    holder.write(&mut state).unwrap();
    assert_eq!(state.serial, 2);

    // Once the lease expired, the lock no longer stops anyone (the serial still does).
    thread::sleep(lease + SHORT);
    state.upsert(resource("postgres_table.c", 1));
    other.write(&mut state).unwrap();
    drop(guard);
}

#[test]
fn guarded_operation_leaves_only_state_and_backup() {
    let fx = Fixture::new();
    fx.stored();
    let backend = fx.backend();
    {
        let guard = backend.lock(&request("apply", "alice@host", LONG)).unwrap();
        let mut state = backend.read().unwrap().unwrap();
        for i in 0..5 {
            state.upsert(resource(&format!("postgres_table.n{i}"), i));
            backend.write(&mut state).unwrap();
            guard.renew().unwrap();
        }
        assert_eq!(state.serial, 6);
    }
    assert_eq!(fx.files(), ["state.json", "state.json.backup"]);
}

#[test]
fn only_one_of_many_contenders_gets_the_lock() {
    for expired_lock_in_place in [false, true] {
        let fx = Fixture::new();
        if expired_lock_in_place {
            let dead = fx
                .backend()
                .lock(&request("apply", "dead@host", Duration::ZERO))
                .unwrap();
            std::mem::forget(dead); // as if the process died
        }
        let contenders = 16;
        let barrier = Arc::new(Barrier::new(contenders));
        let path = fx.path.clone();
        let handles: Vec<_> = (0..contenders)
            .map(|i| {
                let (barrier, path) = (Arc::clone(&barrier), path.clone());
                thread::spawn(move || {
                    let backend = LocalBackend::new(path);
                    barrier.wait();
                    let result = backend.lock(&request("apply", &format!("c{i}@host"), LONG));
                    // Hold the lock until every contender has tried.
                    barrier.wait();
                    match result {
                        Ok(guard) => Some(guard.info()),
                        Err(StateError::Locked { .. }) => None,
                        Err(other) => panic!("{other}"),
                    }
                })
            })
            .collect();
        let winners: Vec<LockInfo> = handles
            .into_iter()
            .filter_map(|h| h.join().unwrap())
            .collect();
        assert_eq!(
            winners.len(),
            1,
            "expired lock in place: {expired_lock_in_place}"
        );
        assert!(fx.files().is_empty(), "{:?}", fx.files());
    }
}

#[test]
fn lock_is_exclusive_under_churn() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let fx = Fixture::new();
    let inside = Arc::new(AtomicUsize::new(0));
    let taken = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let (path, inside, taken) = (fx.path.clone(), Arc::clone(&inside), Arc::clone(&taken));
            thread::spawn(move || {
                let backend = LocalBackend::new(path);
                for _ in 0..40 {
                    match backend.lock(&request("apply", &format!("c{i}@host"), LONG)) {
                        Ok(guard) => {
                            assert_eq!(
                                inside.fetch_add(1, Ordering::SeqCst),
                                0,
                                "two holders at once"
                            );
                            taken.fetch_add(1, Ordering::SeqCst);
                            guard.renew().unwrap();
                            inside.fetch_sub(1, Ordering::SeqCst);
                            guard.release().unwrap();
                        }
                        Err(StateError::Locked { .. }) => thread::yield_now(),
                        Err(other) => panic!("{other}"),
                    }
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    assert!(taken.load(Ordering::SeqCst) > 0);
    assert!(fx.files().is_empty(), "{:?}", fx.files());
}

#[test]
fn describe_names_the_file() {
    let backend = LocalBackend::new(".ds/state.json");
    assert_eq!(backend.describe(), "local file .ds/state.json");
    assert_eq!(backend.lock_path(), Path::new(".ds/state.json.lock"));
    assert_eq!(backend.backup_path(), Path::new(".ds/state.json.backup"));
}

#[test]
fn a_backend_is_a_trait_object() {
    let fx = Fixture::new();
    let backend: Box<dyn Backend> = Box::new(fx.backend());
    let mut state = State::new();
    backend.write(&mut state).unwrap();
    assert_eq!(backend.read().unwrap().unwrap().serial, 1);
}
