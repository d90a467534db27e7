//! The IO half of the provider contract: reading real objects and changing them.
//!
//! A kind that a provider can act on returns a [`Live`] from [`crate::ResourceKind::live`]. The engine calls
//! [`Live::apply`] for each change of a plan and [`Live::read`] to refresh. Both are idempotent: running
//! them again after a crash or a cancellation converges to the same result.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::Value;

use crate::Action;

/// A boxed future, so that [`Live`] stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A secret string: its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Sensitive(String);

impl Sensitive {
    /// Wraps a secret.
    pub fn new(secret: String) -> Sensitive {
        Sensitive(secret)
    }

    /// The secret, for the one place that needs it (a connection).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("(sensitive)")
    }
}

impl std::fmt::Display for Sensitive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("(sensitive)")
    }
}

/// A resolved credential.
#[derive(Debug, Clone)]
pub struct Credential {
    /// User name.
    pub user: String,
    /// Password.
    pub password: Sensitive,
}

/// Resolves credential names (from the model) to credentials, when `ds` connects. The CLI implements it
/// (environment variables, a credentials directory): this crate never reads the environment.
pub trait Credentials: Send + Sync {
    /// The credential `name`, or why it cannot be had (naming what was looked for, never a secret).
    fn resolve(&self, name: &str) -> Result<Credential, String>;
}

/// Credentials from a fixed map (tests, and callers that resolved them already).
#[derive(Default)]
pub struct StaticCredentials(pub HashMap<String, Credential>);

impl Credentials for StaticCredentials {
    fn resolve(&self, name: &str) -> Result<Credential, String> {
        self.0
            .get(name)
            .cloned()
            .ok_or_else(|| format!("no credential `{name}`"))
    }
}

/// What a provider needs to act: credentials and shared connections.
pub struct Ctx {
    /// The credential resolver.
    pub credentials: Arc<dyn Credentials>,
    /// Connections to PostgreSQL databases, shared by every resource of one run.
    pub postgres: crate::postgres::live::Pools,
    /// The HTTP client for Kafka Connect's REST API, shared by every resource of one run.
    pub connect: crate::kafka_connect::client::Http,
    /// S3 clients, shared by every bucket and archive of one run.
    pub s3: crate::s3::live::Clients,
    /// Health findings reported by reads, collected by the refresh.
    health: std::sync::Mutex<Vec<Health>>,
}

impl Ctx {
    /// A context with no open connections.
    pub fn new(credentials: Arc<dyn Credentials>) -> Ctx {
        Ctx {
            credentials,
            postgres: Default::default(),
            connect: Default::default(),
            s3: Default::default(),
            health: Default::default(),
        }
    }

    /// Records a health finding (a read calls it; the refresh collects them with [`Ctx::take_health`]).
    pub fn report(&self, health: Health) {
        if let Ok(mut all) = self.health.lock() {
            all.push(health);
        }
    }

    /// The findings reported so far, in address order; the list is emptied.
    pub fn take_health(&self) -> Vec<Health> {
        let mut all = self
            .health
            .lock()
            .map(|mut all| std::mem::take(&mut *all))
            .unwrap_or_default();
        all.sort_by(|a, b| a.address.cmp(&b.address));
        all
    }
}

/// How healthy a resource is, beyond matching its record: a connector's tasks, a slot's lag.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Working; the message says how (a slot's retained WAL).
    Ok,
    /// Working but needs attention (paused, lagging).
    Warning,
    /// Not working (a FAILED task); `ds reconcile` tries to heal it.
    Failed,
}

/// One health finding of a refresh.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Health {
    /// The resource.
    pub address: String,
    /// How bad.
    pub level: Level,
    /// What was found, in one or a few lines (a task's trace is cut to its first lines).
    pub message: String,
}

/// One change for a provider to make.
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    /// The resource.
    pub address: &'a str,
    /// Create, update, replace or delete.
    pub action: Action,
    /// The desired attributes (none for a delete).
    pub desired: Option<&'a Value>,
    /// The recorded attributes (none for a create).
    pub prior: Option<&'a Value>,
    /// The attributes of the resource's container (a table's schema, a grant's role), which say where it
    /// lives.
    pub container: Option<&'a Value>,
}

/// Why a provider could not act. The message names the resource, the operation and the endpoint (never a
/// password).
#[derive(Debug, thiserror::Error)]
#[error("{address}: {operation} failed at {endpoint}: {message}")]
pub struct ProviderError {
    /// The resource.
    pub address: String,
    /// `create`, `read`, ...
    pub operation: String,
    /// `postgres://127.0.0.1:55432/datasurface` (no credentials).
    pub endpoint: String,
    /// What went wrong.
    pub message: String,
    /// Whether trying again may succeed (a connection refused, a serialization failure).
    pub transient: bool,
}

/// The IO half of a resource kind.
///
/// # Contract
/// - `apply` makes the real object match `change.desired` (or removes it, for a delete), and returns the
///   attributes to record (normally the desired ones), or `None` after a delete. It is idempotent: an object
///   that already exists as desired is left alone; a delete of an object that is gone succeeds.
/// - `read` returns the attributes the object has now, in the same shape as recorded ones, or `None` when it
///   is gone. It changes nothing. Attributes the real system cannot tell (which credential was used) are
///   taken from `prior`.
/// - Errors name the resource, the operation and the endpoint, never a secret.
pub trait Live: Sync {
    /// Refreshes one resource.
    fn read<'a>(
        &'a self,
        ctx: &'a Ctx,
        address: &'a str,
        prior: &'a Value,
        container: Option<&'a Value>,
    ) -> BoxFuture<'a, Result<Option<Value>, ProviderError>>;

    /// Makes one change.
    fn apply<'a>(
        &'a self,
        ctx: &'a Ctx,
        change: Change<'a>,
    ) -> BoxFuture<'a, Result<Option<Value>, ProviderError>>;

    /// Tries to heal a resource whose read reported [`Level::Failed`] (restart a connector's failed tasks).
    /// Returns what was done, or `None` when the kind cannot heal.
    fn heal<'a>(
        &'a self,
        ctx: &'a Ctx,
        address: &'a str,
        recorded: &'a Value,
    ) -> BoxFuture<'a, Result<Option<String>, ProviderError>> {
        let _ = (ctx, address, recorded);
        Box::pin(async { Ok(None) })
    }
}
