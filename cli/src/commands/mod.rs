//! One module per command. Shared here: loading a model for the commands that need a valid one, and
//! finding and locking the state.

pub(crate) mod apply;
pub(crate) mod check;
pub(crate) mod fmt;
pub(crate) mod graph;
pub(crate) mod import;
pub(crate) mod merge;
pub(crate) mod plan;
pub(crate) mod reconcile;
pub(crate) mod scheduler;
pub(crate) mod state;
pub(crate) mod validate;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use planner::diag::Severity;
use planner::model::Model;
use planner::source::Sources;

/// A model that validated: its sources and its typed form.
pub(crate) struct Loaded {
    pub(crate) sources: Sources,
    pub(crate) model: Model,
}

/// Reads and validates the model; an invalid model prints its diagnostics on stderr and fails.
pub(crate) fn load_valid(dir: &Path) -> anyhow::Result<Loaded> {
    let sources = planner::source::read_dir(dir)?;
    let (model, diagnostics) = planner::check(&sources);
    if diagnostics.has_errors() {
        let text = crate::views::diagnostics::text(&sources, &diagnostics, false);
        eprint!("{text}");
        bail!(
            "the model has {} error(s): run `ds validate` for the full report",
            diagnostics.count(Severity::Error)
        );
    }
    Ok(Loaded { sources, model })
}

/// `--state FILE`: a local state file instead of the model's backend.
#[derive(clap::Args, Clone, Default)]
pub(crate) struct StateArgs {
    /// Use this local state file instead of the backend the model's `platform` block names
    #[arg(long = "state", value_name = "FILE")]
    pub(crate) state: Option<PathBuf>,
}

/// A state backend, whichever kind.
pub(crate) type StateBackend = Box<dyn ::state::Backend>;

/// The state backend: `--state FILE`, else the first platform (by name) with a `state` setting, else the
/// local default `.ds/state.json`, paths relative to the model directory. The `postgres` backend keeps the
/// state in the platform's merge database, named after the platform; the `s3` backend keeps it as the
/// object `key` of `bucket` on the platform's object store (with its credential).
pub(crate) fn backend(
    dir: &Path,
    model: Option<&Model>,
    args: &StateArgs,
) -> anyhow::Result<StateBackend> {
    if let Some(path) = &args.state {
        return Ok(Box::new(::state::LocalBackend::new(path.clone())));
    }
    let mut platforms: Vec<&planner::model::Platform> = model
        .map(|m| m.platforms.iter().collect())
        .unwrap_or_default();
    platforms.sort_by(|a, b| a.name.value.cmp(&b.name.value));
    let setting = platforms
        .iter()
        .find_map(|p| p.state.as_ref().map(|s| (p, s)));
    let Some((platform, setting)) = setting else {
        return Ok(Box::new(::state::LocalBackend::new(
            dir.join(".ds/state.json"),
        )));
    };
    let kind = setting
        .backend
        .as_ref()
        .map_or("local", |b| b.value.as_str());
    match kind {
        "local" => {
            let path = setting
                .path
                .as_ref()
                .map_or(".ds/state.json", |p| p.value.as_str());
            Ok(Box::new(::state::LocalBackend::new(dir.join(path))))
        }
        "postgres" => {
            let Some(db) = &platform.merge_db else {
                bail!(
                    "platform `{}` keeps state in postgres but has no merge_db",
                    platform.name.value
                );
            };
            let text = |v: &Option<planner::model::Spanned<String>>| {
                v.as_ref().map_or(String::new(), |v| v.value.clone())
            };
            let credential_name = text(&db.credential);
            let credential = providers::live::Credentials::resolve(
                &crate::credentials::source(model.expect("a platform comes from a model"), dir),
                &credential_name,
            )
            .map_err(|why| {
                anyhow::anyhow!(
                    "the state of platform `{}` is in its merge database: {why}",
                    platform.name.value
                )
            })?;
            let target = ::state::PostgresTarget {
                host: text(&db.host),
                port: db.port.as_ref().map_or(5432, |p| p.value),
                database: text(&db.database),
                user: credential.user,
                password: credential.password.expose().to_string(),
                name: platform.name.value.clone(),
            };
            Ok(Box::new(::state::PostgresBackend::connect(target)?))
        }
        "s3" => {
            let Some(store) = &platform.object_store else {
                bail!(
                    "platform `{}` keeps state in s3 but has no object_store",
                    platform.name.value
                );
            };
            let text = |v: &Option<planner::model::Spanned<String>>| {
                v.as_ref()
                    .map(|v| v.value.clone())
                    .filter(|v| !v.is_empty())
            };
            let (Some(bucket), Some(key)) = (text(&setting.bucket), text(&setting.key)) else {
                bail!(
                    "platform `{}` keeps state in s3 but its `state` setting lacks a `bucket` or a `key`",
                    platform.name.value
                );
            };
            let Some(endpoint) = text(&store.endpoint) else {
                bail!(
                    "platform `{}` keeps state in s3 but its object_store has no endpoint",
                    platform.name.value
                );
            };
            let credential_name = text(&store.credential).unwrap_or_default();
            let credential = providers::live::Credentials::resolve(
                &crate::credentials::source(model.expect("a platform comes from a model"), dir),
                &credential_name,
            )
            .map_err(|why| {
                anyhow::anyhow!(
                    "the state of platform `{}` is in its object store: {why}",
                    platform.name.value
                )
            })?;
            let target = ::state::S3Target {
                endpoint,
                region: text(&store.region).unwrap_or_else(|| "us-east-1".into()),
                access_key: credential.user,
                secret_key: credential.password.expose().to_string(),
                bucket,
                key,
            };
            Ok(Box::new(::state::S3Backend::connect(target)?))
        }
        other => bail!(
            "platform `{}` keeps state in the `{other}` backend, which this ds cannot use yet: pass `--state FILE` to use a local state file",
            platform.name.value
        ),
    }
}

/// Reads the model's state backend without a model (for `ds state` and `ds show`): the model is read when
/// it is valid, to find the backend it names.
pub(crate) fn backend_for_dir(dir: &Path, args: &StateArgs) -> anyhow::Result<StateBackend> {
    if args.state.is_some() {
        return backend(dir, None, args);
    }
    let sources =
        planner::source::read_dir(dir).with_context(|| "finding the state needs the model")?;
    let (model, _) = planner::check(&sources);
    backend(dir, Some(&model), args)
}

/// The one async runtime of a process, for the commands that talk to real systems. One, because pooled
/// connections (`providers::live::Ctx`) run on it: a refresh's connections serve the apply that follows.
pub(crate) fn runtime() -> anyhow::Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    Ok(RUNTIME.get_or_init(|| runtime))
}

/// Locks the state for `operation`. A lock left by a process of this machine that is gone (killed, say) is
/// taken over at once rather than after its lease: the pid it names no longer runs here.
pub(crate) fn lock(
    backend: &dyn ::state::Backend,
    operation: &str,
) -> anyhow::Result<::state::LockGuard> {
    let request = lock_request(operation);
    match backend.lock(&request) {
        Err(::state::StateError::Locked { info, .. })
            if info.who == request.who
                && info.pid != request.pid
                && !Path::new(&format!("/proc/{}", info.pid)).exists() =>
        {
            eprintln!(
                "Taking over the lock {} left by {} ({}, pid {}), which is no longer running.",
                info.id, info.who, info.operation, info.pid
            );
            backend.force_unlock(Some(&info.id))?;
            Ok(backend.lock(&request)?)
        }
        other => Ok(other?),
    }
}

/// Who takes a lock, for the lock's record: `user@host`.
pub(crate) fn lock_request(operation: &str) -> ::state::LockRequest {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    ::state::LockRequest {
        operation: operation.to_string(),
        who: format!("{user}@{host}"),
        pid: std::process::id(),
        lease: Duration::from_secs(15 * 60),
    }
}
