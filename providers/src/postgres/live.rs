//! The PostgreSQL provider's IO: connections, and `read`/`apply` of schemas, tables, views, roles and grants.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};
use tokio_postgres::{Client, NoTls};

use super::{Column, system_columns};
use crate::Action;
use crate::live::{BoxFuture, Change, Ctx, Live, ProviderError};
use crate::types::ColumnType;

/// Connections a run may open to one database.
const CONNECTIONS_PER_DATABASE: usize = 8;
/// Attempts of one operation when the error is transient.
const ATTEMPTS: u32 = 4;

/// Where a resource lives: a database on a server, and the credential to use there.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Database.
    pub database: String,
    /// Credential name.
    pub credential: String,
}

impl Target {
    /// The target named by a schema's or role's attributes: `database` (`host:port/db`) and `credential`.
    pub fn of(attributes: &Value) -> Option<Target> {
        let database = attributes.get("database")?.as_str()?;
        let (server, db) = database.split_once('/')?;
        let (host, port) = server.rsplit_once(':')?;
        Some(Target {
            host: host.to_string(),
            port: port.parse().ok()?,
            database: db.to_string(),
            credential: attributes.get("credential")?.as_str()?.to_string(),
        })
    }

    /// `postgres://host:port/db`, for messages (never with credentials).
    pub fn endpoint(&self) -> String {
        format!("postgres://{}:{}/{}", self.host, self.port, self.database)
    }
}

struct Pool {
    target: Target,
    idle: std::sync::Mutex<Vec<Client>>,
    permits: Arc<Semaphore>,
}

/// Connections of one run, per database and credential.
#[derive(Default)]
pub struct Pools {
    pools: Mutex<HashMap<Target, Arc<Pool>>>,
}

/// A connection lent to one operation; it goes back to its pool when dropped.
pub struct Lease {
    pool: Arc<Pool>,
    client: Option<Client>,
    _permit: OwnedSemaphorePermit,
}

impl std::ops::Deref for Lease {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client
            .as_ref()
            .expect("a lease holds its client until dropped")
    }
}

impl std::ops::DerefMut for Lease {
    fn deref_mut(&mut self) -> &mut Client {
        self.client
            .as_mut()
            .expect("a lease holds its client until dropped")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(client) = self.client.take()
            && !client.is_closed()
            && let Ok(mut idle) = self.pool.idle.lock()
        {
            idle.push(client);
        }
    }
}

impl Pools {
    /// A connection to `target`, opened when none is idle.
    pub async fn lease(
        &self,
        ctx: &Ctx,
        target: &Target,
        address: &str,
    ) -> Result<Lease, ProviderError> {
        let pool = {
            let mut pools = self.pools.lock().await;
            pools
                .entry(target.clone())
                .or_insert_with(|| {
                    Arc::new(Pool {
                        target: target.clone(),
                        idle: std::sync::Mutex::new(Vec::new()),
                        permits: Arc::new(Semaphore::new(CONNECTIONS_PER_DATABASE)),
                    })
                })
                .clone()
        };
        let permit = pool
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let idle = pool.idle.lock().ok().and_then(|mut idle| idle.pop());
        let client = match idle {
            Some(client) => client,
            None => connect(ctx, &pool.target, address).await?,
        };
        Ok(Lease {
            pool,
            client: Some(client),
            _permit: permit,
        })
    }
}

async fn connect(ctx: &Ctx, target: &Target, address: &str) -> Result<Client, ProviderError> {
    let credential = ctx
        .credentials
        .resolve(&target.credential)
        .map_err(|message| ProviderError {
            address: address.to_string(),
            operation: "connect".into(),
            endpoint: target.endpoint(),
            message,
            transient: false,
        })?;
    let mut config = tokio_postgres::Config::new();
    config
        .host(&target.host)
        .port(target.port)
        .dbname(&target.database)
        .user(&credential.user)
        .password(credential.password.expose())
        .application_name("ds")
        .connect_timeout(Duration::from_secs(10));
    let (client, connection) = config.connect(NoTls).await.map_err(|e| ProviderError {
        address: address.to_string(),
        operation: "connect".into(),
        endpoint: target.endpoint(),
        message: describe(&e),
        transient: is_transient(&e),
    })?;
    tokio::spawn(async move {
        // The connection ends when its client is dropped; its error, if any, surfaces on the client.
        let _ = connection.await;
    });
    Ok(client)
}

/// A Postgres error as one line: the server's message and code, or the client's.
pub fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => {
            let mut text = error.to_string();
            let mut source = std::error::Error::source(error);
            while let Some(cause) = source {
                text.push_str(": ");
                text.push_str(&cause.to_string());
                source = cause.source();
            }
            text
        }
    }
}

/// Connection failures, serialization failures, deadlocks and lock timeouts may pass on a retry.
fn is_transient(error: &tokio_postgres::Error) -> bool {
    match error.code() {
        Some(code) => matches!(code.code(), "40001" | "40P01" | "55P03" | "57P03" | "53300"),
        None => error.is_closed() || error.as_db_error().is_none(),
    }
}

/// Quotes an identifier.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The name segments of an address after its type: `postgres_table.s.t` → `["s", "t"]`.
fn segments(address: &str) -> Vec<&str> {
    address.split('.').skip(1).collect()
}

/// Runs `operation` with the provider's retry policy: transient errors are tried again with exponential
/// backoff (0.2 s, 0.4 s, 0.8 s); others fail at once.
async fn with_retry<'a, T, F>(mut operation: F) -> Result<T, ProviderError>
where
    F: FnMut() -> BoxFuture<'a, Result<T, ProviderError>>,
{
    let mut delay = Duration::from_millis(200);
    let mut attempt = 1;
    loop {
        match operation().await {
            Err(err) if err.transient && attempt < ATTEMPTS => {
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            other => return other,
        }
    }
}

struct Op<'a> {
    ctx: &'a Ctx,
    address: &'a str,
    operation: &'static str,
    target: Target,
}

impl<'a> Op<'a> {
    /// A read of `address`, in the database its (or its container's) `attributes` name.
    fn read(
        ctx: &'a Ctx,
        address: &'a str,
        attributes: Option<&Value>,
    ) -> Result<Op<'a>, ProviderError> {
        let target = attributes
            .and_then(Target::of)
            .ok_or_else(|| missing_target(address, "read"))?;
        Ok(Op {
            ctx,
            address,
            operation: "read",
            target,
        })
    }

    /// A change, in the database its own attributes (`own`: schemas, roles, source objects) or its
    /// container's name.
    fn apply(ctx: &'a Ctx, change: &Change<'a>, own: bool) -> Result<Op<'a>, ProviderError> {
        let target =
            target_of(change, own).ok_or_else(|| missing_target(change.address, "apply"))?;
        Ok(Op {
            ctx,
            address: change.address,
            operation: operation_name(change.action),
            target,
        })
    }

    fn error(&self, message: String, transient: bool) -> ProviderError {
        ProviderError {
            address: self.address.to_string(),
            operation: self.operation.to_string(),
            endpoint: self.target.endpoint(),
            message,
            transient,
        }
    }

    fn db(&self, error: tokio_postgres::Error) -> ProviderError {
        self.error(describe(&error), is_transient(&error))
    }

    async fn lease(&self) -> Result<Lease, ProviderError> {
        self.ctx
            .postgres
            .lease(self.ctx, &self.target, self.address)
            .await
    }

    /// Runs statements in one transaction.
    async fn transaction(&self, statements: &[String]) -> Result<(), ProviderError> {
        let mut client = self.lease().await?;
        let tx = client.transaction().await.map_err(|e| self.db(e))?;
        for statement in statements {
            tx.batch_execute(statement).await.map_err(|e| self.db(e))?;
        }
        tx.commit().await.map_err(|e| self.db(e))
    }

    /// Runs statements in one transaction, with the provider's retry policy.
    async fn run(&self, statements: &[String]) -> Result<(), ProviderError> {
        with_retry(|| Box::pin(self.transaction(statements))).await
    }

    async fn exists(
        &self,
        query: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<bool, ProviderError> {
        let client = self.lease().await?;
        let row = client
            .query_opt(query, params)
            .await
            .map_err(|e| self.db(e))?;
        Ok(row.is_some())
    }
}

fn missing_target(address: &str, operation: &'static str) -> ProviderError {
    ProviderError {
        address: address.to_string(),
        operation: operation.into(),
        endpoint: "(unknown)".into(),
        message: "the attributes do not say which database it is in (database, credential)".into(),
        transient: false,
    }
}

pub fn operation_name(action: Action) -> &'static str {
    match action {
        Action::Create => "create",
        Action::Update => "update",
        Action::Replace => "replace",
        Action::Delete => "delete",
        Action::NoOp => "no-op",
    }
}

/// The target of a change: the resource's own attributes (schemas, roles) or its container's.
fn target_of(change: &Change<'_>, own: bool) -> Option<Target> {
    if own {
        change.desired.or(change.prior).and_then(Target::of)
    } else {
        change.container.and_then(Target::of)
    }
}

/// The read of an object whose only attribute Postgres can tell is that it exists (a schema, a role): the
/// recorded attributes while `query` (which takes the name) finds a row, `None` when it does not.
async fn read_exists(
    ctx: &Ctx,
    address: &str,
    prior: &Value,
    query: &'static str,
) -> Result<Option<Value>, ProviderError> {
    let op = Op::read(ctx, address, Some(prior))?;
    let name = segments(address).join(".");
    let exists = op.exists(query, &[&name]).await?;
    Ok(exists.then(|| prior.clone()))
}

// ---- schemas ----

/// `postgres_schema`'s IO.
pub struct SchemaLive;

impl Live for SchemaLive {
    fn read<'a>(
        &'a self,
        ctx: &'a Ctx,
        address: &'a str,
        prior: &'a Value,
        _container: Option<&'a Value>,
    ) -> BoxFuture<'a, Result<Option<Value>, ProviderError>> {
        Box::pin(read_exists(
            ctx,
            address,
            prior,
            "SELECT 1 FROM pg_namespace WHERE nspname = $1",
        ))
    }

    fn apply<'a>(
        &'a self,
        ctx: &'a Ctx,
        change: Change<'a>,
    ) -> BoxFuture<'a, Result<Option<Value>, ProviderError>> {
        Box::pin(async move {
            let op = Op::apply(ctx, &change, true)?;
            let name = ident(&segments(change.address).join("."));
            let statement = match change.action {
                Action::Delete => format!("DROP SCHEMA IF EXISTS {name}"),
                _ => format!("CREATE SCHEMA IF NOT EXISTS {name}"),
            };
            op.run(&[statement]).await?;
            Ok(change.desired.cloned())
        })
    }
}

// ---- tables ----

/// `postgres_table`'s IO.
pub struct TableLive;

/// The `CREATE TABLE` and index statements of a table.
pub fn create_table_sql(schema: &str, name: &str, attributes: &Value) -> Vec<String> {
    let role = attributes.get("role").and_then(Value::as_str).unwrap_or("");
    let columns = attributes
        .get("columns")
        .and_then(Value::as_str)
        .map(Column::parse_list)
        .unwrap_or_default();
    let key: Vec<&str> = attributes
        .get("primary_key")
        .and_then(Value::as_array)
        .map(|k| k.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let table = format!("{}.{}", ident(schema), ident(name));
    let mut defs: Vec<String> = columns
        .iter()
        .map(|c| {
            let ty =
                c.ty.map_or_else(|| c.type_text.to_string(), |t| t.postgres());
            format!(
                "{} {ty}{}",
                ident(c.name),
                if c.nullable { "" } else { " NOT NULL" }
            )
        })
        .collect();
    for (column, ty, nullable) in system_columns(role) {
        let ty = if *column == "ds_landing_id" {
            "bigint GENERATED BY DEFAULT AS IDENTITY".to_string()
        } else {
            ColumnType::parse(ty).map_or_else(|_| ty.to_string(), |t| t.postgres())
        };
        defs.push(format!(
            "{} {ty}{}",
            ident(column),
            if *nullable { "" } else { " NOT NULL" }
        ));
    }
    let mut key: Vec<String> = key.iter().map(|k| ident(k)).collect();
    match role {
        "merge_forensic" if !key.is_empty() => key.push(ident("ds_surf_batch_in")),
        "landing" => key = vec![ident("ds_landing_id")],
        _ => {}
    }
    if !key.is_empty() {
        defs.push(format!("PRIMARY KEY ({})", key.join(", ")));
    }
    let mut statements = vec![format!(
        "CREATE TABLE IF NOT EXISTS {table} ({})",
        defs.join(", ")
    )];
    let index = |suffix: &str, columns: &str| {
        format!(
            "CREATE INDEX IF NOT EXISTS {} ON {table} ({columns})",
            ident(&crate::physical::identifier(&format!("{name}__{suffix}")))
        )
    };
    match role {
        // By batch only: its values arrive in order, so a million-row batch costs the index next to
        // nothing, where (batch, key hash) made COPY into staging four times slower (docs/benchmarks.md);
        // the merge joins a batch's rows by hash.
        "staging" => statements.push(index("batch_id", "ds_surf_batch_id")),
        "merge_live" => statements.push(index("key", "ds_surf_key_hash")),
        "merge_forensic" => statements.push(index("key", "ds_surf_key_hash, ds_surf_batch_out")),
        _ => {}
    }
    statements
}

/// The `ALTER TABLE` statements of an in-place update: columns the model does not have dropped, new
/// nullable columns, widened types, dropped NOT NULLs.
pub fn alter_table_sql(schema: &str, name: &str, desired: &Value, prior: &Value) -> Vec<String> {
    let table = format!("{}.{}", ident(schema), ident(name));
    let cols = |v: &Value| {
        v.get("columns")
            .and_then(Value::as_str)
            .map(|s| {
                Column::parse_list(s)
                    .into_iter()
                    .map(|c| {
                        (
                            c.name.to_string(),
                            c.type_text.to_string(),
                            c.ty,
                            c.nullable,
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    let (new, old) = (cols(desired), cols(prior));
    let mut statements = Vec::new();
    for (name, ..) in &old {
        if !new.iter().any(|(n, ..)| n == name) {
            statements.push(format!(
                "ALTER TABLE {table} DROP COLUMN IF EXISTS {}",
                ident(name)
            ));
        }
    }
    for (name, text, ty, nullable) in &new {
        match old.iter().find(|(n, ..)| n == name) {
            None => {
                let ty = ty.map_or_else(|| text.clone(), |t| t.postgres());
                statements.push(format!(
                    "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {} {ty}",
                    ident(name)
                ));
            }
            Some((_, _, old_ty, old_nullable)) => {
                if old_ty != ty
                    && let Some(ty) = ty
                {
                    statements.push(format!(
                        "ALTER TABLE {table} ALTER COLUMN {} TYPE {}",
                        ident(name),
                        ty.postgres()
                    ));
                }
                if *nullable && !old_nullable {
                    statements.push(format!(
                        "ALTER TABLE {table} ALTER COLUMN {} DROP NOT NULL",
                        ident(name)
                    ));
                }
            }
        }
    }
    statements
}

/// The model's spelling of a type as `format_type` prints it, when the model has one.
pub fn model_type(postgres: &str) -> String {
    let (base, args) = match postgres.split_once('(') {
        Some((base, rest)) => (base.trim(), Some(rest.trim_end_matches(')'))),
        None => (postgres.trim(), None),
    };
    let base = match base {
        "character varying" => "varchar",
        "character" => "char",
        "numeric" => "decimal",
        "double precision" => "double",
        "timestamp without time zone" => "timestamp",
        "timestamp with time zone" => "timestamptz",
        "jsonb" => "json",
        other => other,
    };
    match args {
        Some(args) => format!("{base}({})", args.replace(' ', "")),
        None => base.to_string(),
    }
}

impl Live for TableLive {
    fn read<'a>(
        &'a self,
        ctx: &'a Ctx,
        address: &'a str,
        prior: &'a Value,
        container: Option<&'a Value>,
    ) -> BoxFuture<'a, Result<Option<Value>, ProviderError>> {
        Box::pin(async move {
            let op = Op::read(ctx, address, container)?;
            let parts = segments(address);
            let (schema, name) = (parts[0], parts[1..].join("."));
            let client = op.lease().await?;
            let rows = client
                .query(
                    "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull \
                     FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
                     JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped \
                     ORDER BY a.attnum",
                    &[&schema, &name],
                )
                .await
                .map_err(|e| op.db(e))?;
            if rows.is_empty() {
                return Ok(None);
            }
            let role = prior.get("role").and_then(Value::as_str).unwrap_or("");
            let system: Vec<&str> = system_columns(role).iter().map(|(n, ..)| *n).collect();
            let columns: Vec<String> = rows
                .iter()
                .filter(|row| !system.contains(&row.get::<_, String>(0).as_str()))
                .map(|row| {
                    let name: String = row.get(0);
                    let ty: String = row.get(1);
                    let not_null: bool = row.get(2);
                    let ty = model_type(&ty);
                    if not_null {
                        format!("{name} {ty} not null")
                    } else {
                        format!("{name} {ty}")
                    }
                })
                .collect();
            let mut now = prior.clone();
            now["columns"] = json!(columns.join(", "));
            // A table made by an older `ds` may lack a system column its role has now (the landing
            // tables' change-event columns): shown as drift, which an update repairs.
            let present: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
            let missing: Vec<&str> = system
                .iter()
                .filter(|c| !present.iter().any(|p| p == *c))
                .copied()
                .collect();
            if !missing.is_empty() {
                now[MISSING_SYSTEM_COLUMNS] = json!(missing.join(", "));
            }
            Ok(Some(now))
        })
    }

    fn apply<'a>(
        &'a self,
        ctx: &'a Ctx,
        change: Change<'a>,
    ) -> BoxFuture<'a, Result<Option<Value>, ProviderError>> {
        Box::pin(async move {
            let op = Op::apply(ctx, &change, false)?;
            let parts = segments(change.address);
            let (schema, name) = (parts[0], parts[1..].join("."));
            let table = format!("{}.{}", ident(schema), ident(&name));
            let statements: Vec<String> = match (change.action, change.desired, change.prior) {
                (Action::Delete, ..) => vec![format!("DROP TABLE IF EXISTS {table}")],
                (Action::Replace, Some(desired), _) => {
                    // Views on it go too; the plan replaces them after this.
                    let mut s = vec![format!("DROP TABLE IF EXISTS {table} CASCADE")];
                    s.extend(create_table_sql(schema, &name, desired));
                    s
                }
                (Action::Update, Some(desired), Some(prior)) => {
                    let mut alters = alter_table_sql(schema, &name, desired, prior);
                    if prior.get(MISSING_SYSTEM_COLUMNS).is_some() {
                        alters.extend(add_system_columns_sql(&table, desired));
                    }
                    if alters.iter().any(|a| a.contains(" TYPE ")) {
                        // Postgres refuses to change the type of a column a view reads: set the views
                        // aside and put them back, with their grants, in the same transaction.
                        let op = &op;
                        let table = &table;
                        with_retry(|| {
                            let alters = &alters;
                            Box::pin(async move { alter_under_views(op, table, alters).await })
                        })
                        .await?;
                        return Ok(change.desired.cloned());
                    }
                    let mut s = create_table_sql(schema, &name, desired);
                    s.extend(alters);
                    s
                }
                (_, Some(desired), _) => create_table_sql(schema, &name, desired),
                _ => Vec::new(),
            };
            op.run(&statements).await?;
            Ok(change.desired.cloned())
        })
    }
}

/// The attribute a table's read adds when system columns of its role are missing.
pub const MISSING_SYSTEM_COLUMNS: &str = "missing_system_columns";

/// `ADD COLUMN IF NOT EXISTS` for the system columns of a table's role that can be added to a table with
/// rows: the nullable ones and the identity.
fn add_system_columns_sql(table: &str, attributes: &Value) -> Vec<String> {
    let role = attributes.get("role").and_then(Value::as_str).unwrap_or("");
    system_columns(role)
        .iter()
        .filter(|(column, _, nullable)| *nullable || *column == "ds_landing_id")
        .map(|(column, ty, _)| {
            let ty = if *column == "ds_landing_id" {
                "bigint GENERATED BY DEFAULT AS IDENTITY".to_string()
            } else {
                ColumnType::parse(ty).map_or_else(|_| ty.to_string(), |t| t.postgres())
            };
            format!(
                "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {} {ty}",
                ident(column)
            )
        })
        .collect()
}

/// Runs `alters` on `table` with the views that read it dropped and recreated around them (definitions and
/// grants as they were), in one transaction.
async fn alter_under_views(
    op: &Op<'_>,
    table: &str,
    alters: &[String],
) -> Result<(), ProviderError> {
    let mut client = op.lease().await?;
    let tx = client.transaction().await.map_err(|e| op.db(e))?;
    let views = tx
        .query(
            "SELECT DISTINCT n.nspname::text, v.relname::text, pg_get_viewdef(v.oid, true) \
             FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class \
             JOIN pg_namespace n ON n.oid = v.relnamespace \
             WHERE d.refobjid = $1::text::regclass AND v.oid <> d.refobjid AND v.relkind = 'v'",
            &[&table],
        )
        .await
        .map_err(|e| op.db(e))?;
    let mut restore = Vec::new();
    for view in &views {
        let (schema, name, definition): (String, String, String) =
            (view.get(0), view.get(1), view.get(2));
        let qualified = format!("{}.{}", ident(&schema), ident(&name));
        let grants = tx
            .query(
                "SELECT grantee::text, privilege_type::text FROM information_schema.role_table_grants \
                 WHERE table_schema = $1 AND table_name = $2 AND grantee <> current_user",
                &[&schema, &name],
            )
            .await
            .map_err(|e| op.db(e))?;
        tx.batch_execute(&format!("DROP VIEW {qualified}"))
            .await
            .map_err(|e| op.db(e))?;
        restore.push(format!("CREATE VIEW {qualified} AS {definition}"));
        for grant in grants {
            let (grantee, privilege): (String, String) = (grant.get(0), grant.get(1));
            restore.push(format!(
                "GRANT {privilege} ON {qualified} TO {}",
                ident(&grantee)
            ));
        }
    }
    for statement in alters.iter().chain(&restore) {
        tx.batch_execute(statement).await.map_err(|e| op.db(e))?;
    }
    tx.commit().await.map_err(|e| op.db(e))
}

// ---- views ----

/// `postgres_view`'s IO.
pub struct ViewLive;

impl Live for ViewLive {
    fn read<'a>(
        &'a self,
        ctx: &'a Ctx,
        address: &'a str,
        prior: &'a Value,
        container: Option<&'a Value>,
    ) -> BoxFuture<'a, Result<Option<Value>, ProviderError>> {
        Box::pin(async move {
            let op = Op::read(ctx, address, container)?;
            let parts = segments(address);
            let (schema, name) = (parts[0], parts[1..].join("."));
            let mut client = op.lease().await?;
            let actual = client
                .query_opt(
                    "SELECT pg_get_viewdef(c.oid, true) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind = 'v'",
                    &[&schema, &name],
                )
                .await
                .map_err(|e| op.db(e))?;
            let Some(actual) = actual else {
                return Ok(None);
            };
            let actual: String = actual.get(0);
            // Postgres rewrites view text; compare it with the recorded definition as Postgres would
            // rewrite that (a temporary view in a transaction that is rolled back).
            let recorded = prior
                .get("definition")
                .and_then(Value::as_str)
                .unwrap_or("");
            let tx = client.transaction().await.map_err(|e| op.db(e))?;
            let normalised = match tx
                .batch_execute(&format!("CREATE TEMPORARY VIEW ds_normalise AS {recorded}"))
                .await
            {
                Ok(()) => tx
                    .query_one("SELECT pg_get_viewdef('ds_normalise'::regclass, true)", &[])
                    .await
                    .map(|row| row.get::<_, String>(0))
                    .ok(),
                Err(_) => None,
            };
            let _ = tx.rollback().await;
            if normalised.as_deref() == Some(actual.as_str()) {
                Ok(Some(prior.clone()))
            } else {
                Ok(Some(
                    json!({ "definition": actual.trim().trim_end_matches(';') }),
                ))
            }
        })
    }

    fn apply<'a>(
        &'a self,
        ctx: &'a Ctx,
        change: Change<'a>,
    ) -> BoxFuture<'a, Result<Option<Value>, ProviderError>> {
        Box::pin(async move {
            let op = Op::apply(ctx, &change, false)?;
            let parts = segments(change.address);
            let (schema, name) = (parts[0], parts[1..].join("."));
            let view = format!("{}.{}", ident(schema), ident(&name));
            let definition = change
                .desired
                .and_then(|d| d.get("definition"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            with_retry(|| {
                let (op, view, definition, schema, name) = (&op, &view, &definition, schema, &name);
                Box::pin(async move {
                    if change.action == Action::Delete {
                        return op.transaction(&[format!("DROP VIEW IF EXISTS {view}")]).await;
                    }
                    // Dropping a view drops its grants: keep them, in the same transaction, so that no
                    // reader loses access for a moment.
                    let mut client = op.lease().await?;
                    let tx = client.transaction().await.map_err(|e| op.db(e))?;
                    let grants = tx
                        .query(
                            "SELECT grantee::text, privilege_type::text FROM information_schema.role_table_grants \
                             WHERE table_schema = $1 AND table_name = $2 AND grantee <> current_user",
                            &[&schema, name],
                        )
                        .await
                        .map_err(|e| op.db(e))?;
                    tx.batch_execute(&format!("DROP VIEW IF EXISTS {view}")).await.map_err(|e| op.db(e))?;
                    tx.batch_execute(&format!("CREATE VIEW {view} AS {definition}")).await.map_err(|e| op.db(e))?;
                    for row in grants {
                        let grantee: String = row.get(0);
                        let privilege: String = row.get(1);
                        tx.batch_execute(&format!("GRANT {privilege} ON {view} TO {}", ident(&grantee)))
                            .await
                            .map_err(|e| op.db(e))?;
                    }
                    tx.commit().await.map_err(|e| op.db(e))
                })
            })
            .await?;
            Ok(change.desired.cloned())
        })
    }
}

// ---- roles ----

/// `postgres_role`'s IO.
pub struct RoleLive;

impl Live for RoleLive {
    fn read<'a>(
        &'a self,
        ctx: &'a Ctx,
        address: &'a str,
        prior: &'a Value,
        _container: Option<&'a Value>,
    ) -> BoxFuture<'a, Result<Option<Value>, ProviderError>> {
        Box::pin(read_exists(
            ctx,
            address,
            prior,
            "SELECT 1 FROM pg_roles WHERE rolname = $1",
        ))
    }

    fn apply<'a>(
        &'a self,
        ctx: &'a Ctx,
        change: Change<'a>,
    ) -> BoxFuture<'a, Result<Option<Value>, ProviderError>> {
        Box::pin(async move {
            let op = Op::apply(ctx, &change, true)?;
            let name = segments(change.address).join(".");
            let statement = if change.action == Action::Delete {
                format!("DROP ROLE IF EXISTS {}", ident(&name))
            } else {
                // Roles are cluster-wide and CREATE ROLE has no IF NOT EXISTS.
                format!(
                    "DO $ds$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {}) THEN CREATE ROLE {} NOLOGIN; END IF; END $ds$",
                    literal(&name),
                    ident(&name)
                )
            };
            op.run(std::slice::from_ref(&statement)).await?;
            Ok(change.desired.cloned())
        })
    }
}

// ---- grants ----

/// `postgres_grant`'s IO.
pub struct GrantLive;

/// `(role, schema, object)` of a grant address.
fn grant_parts(address: &str) -> (String, String, Option<String>) {
    let parts = segments(address);
    (
        parts.first().copied().unwrap_or("").to_string(),
        parts.get(1).copied().unwrap_or("").to_string(),
        (parts.len() > 2).then(|| parts[2..].join(".")),
    )
}

fn privileges(attributes: Option<&Value>) -> Vec<String> {
    attributes
        .and_then(|a| a.get("privileges"))
        .and_then(Value::as_array)
        .map(|p| {
            p.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

impl Live for GrantLive {
    fn read<'a>(
        &'a self,
        ctx: &'a Ctx,
        address: &'a str,
        prior: &'a Value,
        container: Option<&'a Value>,
    ) -> BoxFuture<'a, Result<Option<Value>, ProviderError>> {
        Box::pin(async move {
            let op = Op::read(ctx, address, container)?;
            let (role, schema, object) = grant_parts(address);
            let client = op.lease().await?;
            let mut held = Vec::new();
            for privilege in privileges(Some(prior)) {
                let row = match &object {
                    None => {
                        client
                            .query_one(
                                "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1) \
                             AND EXISTS (SELECT FROM pg_namespace WHERE nspname = $2) \
                             AND has_schema_privilege($1, $2, $3)",
                                &[&role, &schema, &privilege],
                            )
                            .await
                    }
                    Some(object) => {
                        let qualified = format!("{}.{}", ident(&schema), ident(object));
                        client
                            .query_one(
                                "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1) \
                                 AND to_regclass($2) IS NOT NULL AND has_table_privilege($1, $2, $3)",
                                &[&role, &qualified, &privilege],
                            )
                            .await
                    }
                };
                if row.map_err(|e| op.db(e))?.get::<_, bool>(0) {
                    held.push(privilege);
                }
            }
            if held.is_empty() {
                return Ok(None);
            }
            let mut now = prior.clone();
            now["privileges"] = json!(held);
            Ok(Some(now))
        })
    }

    fn apply<'a>(
        &'a self,
        ctx: &'a Ctx,
        change: Change<'a>,
    ) -> BoxFuture<'a, Result<Option<Value>, ProviderError>> {
        Box::pin(async move {
            let op = Op::apply(ctx, &change, false)?;
            let (role, schema, object) = grant_parts(change.address);
            let on = match &object {
                None => format!("SCHEMA {}", ident(&schema)),
                Some(object) => format!("{}.{}", ident(&schema), ident(object)),
            };
            let role_ident = ident(&role);
            let mut statements = Vec::new();
            // Revoke and grant in one transaction: no moment without the access that stays.
            if change.action != Action::Create {
                let old = privileges(change.prior);
                if !old.is_empty() {
                    statements.push(format!(
                        "REVOKE {} ON {on} FROM {role_ident}",
                        old.join(", ")
                    ));
                }
            }
            if change.action != Action::Delete {
                statements.push(format!(
                    "GRANT {} ON {on} TO {role_ident}",
                    privileges(change.desired).join(", ")
                ));
            }
            let gone = |e: &ProviderError| {
                // Revoking on an object or from a role that is gone: nothing left to revoke.
                change.action == Action::Delete
                    && (e.message.contains("(SQLSTATE 42P01)")
                        || e.message.contains("(SQLSTATE 3F000)")
                        || e.message.contains("(SQLSTATE 42704)"))
            };
            match op.run(&statements).await {
                Err(e) if gone(&e) => {}
                other => other?,
            }
            Ok(change.desired.cloned())
        })
    }
}

// ---- Debezium's objects in the source database: the publication and the replication slot ----

/// `debezium_publication`'s IO: `CREATE PUBLICATION ... FOR TABLE ...` on the source database.
pub struct PublicationLive;

fn publication_tables(attributes: Option<&Value>) -> Vec<String> {
    attributes
        .and_then(|a| a.get("tables"))
        .and_then(Value::as_array)
        .map(|t| {
            t.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn signal_table(attributes: Option<&Value>) -> Option<&str> {
    attributes
        .and_then(|a| a.get("signal_table"))
        .and_then(Value::as_str)
}

fn object_name(attributes: Option<&Value>) -> String {
    attributes
        .and_then(|a| a.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// `schema.table` as a quoted relation name.
pub fn relation(table: &str) -> String {
    match table.split_once('.') {
        Some((schema, name)) => format!("{}.{}", ident(schema), ident(name)),
        None => ident(table),
    }
}

impl Live for PublicationLive {
    fn read<'a>(
        &'a self,
        ctx: &'a Ctx,
        address: &'a str,
        prior: &'a Value,
        _container: Option<&'a Value>,
    ) -> BoxFuture<'a, Result<Option<Value>, ProviderError>> {
        Box::pin(async move {
            let op = Op::read(ctx, address, Some(prior))?;
            let name = object_name(Some(prior));
            let client = op.lease().await?;
            if client
                .query_opt("SELECT 1 FROM pg_publication WHERE pubname = $1", &[&name])
                .await
                .map_err(|e| op.db(e))?
                .is_none()
            {
                return Ok(None);
            }
            let rows = client
                .query(
                    "SELECT schemaname::text || '.' || tablename::text FROM pg_publication_tables \
                     WHERE pubname = $1 ORDER BY 1",
                    &[&name],
                )
                .await
                .map_err(|e| op.db(e))?;
            let signal = signal_table(Some(prior));
            let mut actual: Vec<String> = rows
                .iter()
                .map(|r| r.get::<_, String>(0))
                .filter(|t| Some(t.as_str()) != signal)
                .collect();
            let mut recorded = publication_tables(Some(prior));
            recorded.sort();
            if actual == recorded {
                return Ok(Some(prior.clone()));
            }
            actual.sort();
            let mut now = prior.clone();
            now["tables"] = json!(actual);
            Ok(Some(now))
        })
    }

    fn apply<'a>(
        &'a self,
        ctx: &'a Ctx,
        change: Change<'a>,
    ) -> BoxFuture<'a, Result<Option<Value>, ProviderError>> {
        Box::pin(async move {
            let op = Op::apply(ctx, &change, true)?;
            let name = object_name(change.desired.or(change.prior));
            let publication = ident(&name);
            if change.action == Action::Delete {
                let mut statements = vec![format!("DROP PUBLICATION IF EXISTS {publication}")];
                if let Some(signal) = signal_table(change.prior) {
                    statements.push(format!("DROP TABLE IF EXISTS {}", relation(signal)));
                }
                op.run(&statements).await?;
                return Ok(None);
            }
            let mut statements = Vec::new();
            let mut tables: Vec<String> = publication_tables(change.desired)
                .iter()
                .map(|t| relation(t))
                .collect();
            if let Some(signal) = signal_table(change.desired) {
                // Debezium's signal table (incremental snapshots): published, so that the connector sees
                // the signals `ds apply` writes.
                statements.push(format!(
                    "CREATE TABLE IF NOT EXISTS {} (id varchar(64) PRIMARY KEY, type varchar(32) NOT NULL, data varchar(2048))",
                    relation(signal)
                ));
                tables.push(relation(signal));
            }
            // Create it, or set its tables: either way it ends up publishing exactly these.
            let statement = format!(
                "DO $ds$ BEGIN \
                   IF EXISTS (SELECT FROM pg_publication WHERE pubname = {}) THEN \
                     ALTER PUBLICATION {publication} SET TABLE {tables}; \
                   ELSE CREATE PUBLICATION {publication} FOR TABLE {tables}; END IF; END $ds$",
                literal(&name),
                tables = tables.join(", ")
            );
            statements.push(statement);
            op.run(&statements).await?;
            Ok(change.desired.cloned())
        })
    }
}

/// `1.5 MiB`.
fn bytes(n: i64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Drops a slot. Its connector was deleted just before (the slot depends on it the other way round), but
/// the worker may hold the slot for a few seconds more: while it is active (SQLSTATE 55006), try again.
async fn drop_slot(op: &Op<'_>, drop: &str) -> Result<(), ProviderError> {
    let started = std::time::Instant::now();
    loop {
        match op.transaction(&[drop.to_string()]).await {
            Err(error)
                if error.message.contains("55006")
                    && started.elapsed() < Duration::from_secs(60) =>
            {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            other => return other,
        }
    }
}

/// `debezium_slot`'s IO: a `pgoutput` logical replication slot on the source database.
pub struct SlotLive;

impl Live for SlotLive {
    fn read<'a>(
        &'a self,
        ctx: &'a Ctx,
        address: &'a str,
        prior: &'a Value,
        _container: Option<&'a Value>,
    ) -> BoxFuture<'a, Result<Option<Value>, ProviderError>> {
        Box::pin(async move {
            let op = Op::read(ctx, address, Some(prior))?;
            let name = object_name(Some(prior));
            let client = op.lease().await?;
            let row = client
                .query_opt(
                    "SELECT plugin::text, active, \
                            pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint \
                     FROM pg_replication_slots WHERE slot_name = $1 AND database = current_database()",
                    &[&name],
                )
                .await
                .map_err(|e| op.db(e))?;
            if let Some(row) = &row {
                let retained: Option<i64> = row.get(2);
                let active: bool = row.get(1);
                ctx.report(crate::live::Health {
                    address: address.to_string(),
                    level: if active {
                        crate::live::Level::Ok
                    } else {
                        crate::live::Level::Warning
                    },
                    message: format!(
                        "slot {name} {} and retains {} of WAL",
                        if active {
                            "is read"
                        } else {
                            "is not read by any connector"
                        },
                        bytes(retained.unwrap_or(0))
                    ),
                });
            }
            Ok(row.map(|row| {
                let mut now = prior.clone();
                now["plugin"] = json!(row.get::<_, String>(0));
                now
            }))
        })
    }

    fn apply<'a>(
        &'a self,
        ctx: &'a Ctx,
        change: Change<'a>,
    ) -> BoxFuture<'a, Result<Option<Value>, ProviderError>> {
        Box::pin(async move {
            let op = Op::apply(ctx, &change, true)?;
            let slot = object_name(change.desired.or(change.prior));
            let name = literal(&slot);
            // Slot names are cluster-wide: never touch a slot of the same name in another database.
            let drop = format!(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
                 WHERE slot_name = {name} AND database = current_database()"
            );
            if change.action != Action::Delete {
                let client = op.lease().await?;
                let elsewhere: Option<String> = client
                    .query_opt(
                        "SELECT database::text FROM pg_replication_slots \
                         WHERE slot_name = $1 AND database IS DISTINCT FROM current_database()",
                        &[&slot],
                    )
                    .await
                    .map_err(|e| op.db(e))?
                    .map(|row| row.get(0));
                if let Some(database) = elsewhere {
                    return Err(op.error(
                        format!(
                            "the replication slot {slot} already exists for database {database}: slot names are \
                             cluster-wide, so two stores of one name cannot share a server; rename the store, or \
                             drop that slot if nothing reads it"
                        ),
                        false,
                    ));
                }
            }
            let create = format!(
                "SELECT pg_create_logical_replication_slot({name}, 'pgoutput') \
                 WHERE NOT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = {name})"
            );
            // A slot is not transactional DDL: one statement a call.
            match change.action {
                Action::Delete => drop_slot(&op, &drop).await?,
                Action::Replace => {
                    drop_slot(&op, &drop).await?;
                    op.run(&[create]).await?;
                }
                _ => op.run(&[create]).await?,
            }
            Ok(change.desired.cloned())
        })
    }
}
