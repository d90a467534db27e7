//! MySQL and MariaDB sources of `sql_snapshot` and `sql_watermark` stores, through sqlx.
//!
//! The session runs with `ANSI_QUOTES` and `NO_BACKSLASH_ESCAPES`, so the engine's SQL (double-quoted
//! identifiers, `''`-escaped literals) means the same here as on Postgres, and in UTC, so `TIMESTAMP`
//! columns read the same whatever the server's zone. Every column is read as `CAST(... AS CHAR)` (its text
//! form) and written out as COPY text rows, which the engine hashes and copies into staging exactly as it
//! does a Postgres source's: Postgres parses each value into the staging column's type, and a value that
//! does not fit fails the batch naming the column.

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
// The SQL is the engine's own, built from the model's names (quoted) and watermark values (escaped).
use sqlx::{AssertSqlSafe, Connection, Row};

use crate::live::Ctx;
use crate::postgres::live::Target;

/// `mysql://host:port/database`, for messages (never with credentials).
pub fn endpoint(target: &Target) -> String {
    format!(
        "mysql://{}:{}/{}",
        target.host, target.port, target.database
    )
}

/// A connection to `target` with the session settings above.
pub async fn connect(ctx: &Ctx, target: &Target) -> Result<MySqlConnection, String> {
    let credential = ctx.credentials.resolve(&target.credential)?;
    let options = MySqlConnectOptions::new()
        .host(&target.host)
        .port(target.port)
        .database(&target.database)
        .username(&credential.user)
        .password(credential.password.expose())
        .charset("utf8mb4")
        .timezone(Some("+00:00".into()));
    let mut connection = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        MySqlConnection::connect_with(&options),
    )
    .await
    .map_err(|_| "no answer within 10 s".to_string())?
    .map_err(|e| describe(&e))?;
    sqlx::raw_sql(
        "SET SESSION sql_mode = CONCAT(@@SESSION.sql_mode, ',ANSI_QUOTES,NO_BACKSLASH_ESCAPES')",
    )
    .execute(&mut connection)
    .await
    .map_err(|e| describe(&e))?;
    Ok(connection)
}

/// sqlx's message for an error, without the noise of its wrapper.
pub fn describe(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Database(e) => match e.code() {
            Some(code) => format!("{} (MySQL error {code})", e.message()),
            None => e.message().to_string(),
        },
        other => other.to_string(),
    }
}

/// One text value: `CAST(<column> AS CHAR)`.
pub fn as_text(column: &str) -> String {
    format!("CAST({} AS CHAR)", crate::postgres::live::ident(column))
}

/// The highest value of the query's single column, as text.
pub async fn scalar(ctx: &Ctx, target: &Target, sql: &str) -> Result<Option<String>, String> {
    let mut connection = connect(ctx, target).await?;
    let row = sqlx::query(AssertSqlSafe(sql.to_string()))
        .fetch_one(&mut connection)
        .await
        .map_err(|e| describe(&e))?;
    row.try_get::<Option<String>, _>(0)
        .map_err(|e| describe(&e))
}

/// Streams the rows of `select` (every column `CAST ... AS CHAR`) as chunks of COPY text rows, from a task
/// of its own that holds the connection; the receiver ends after the last row or the first error.
pub async fn copy_out(
    ctx: &Ctx,
    target: &Target,
    select: String,
) -> Result<tokio::sync::mpsc::Receiver<Result<Bytes, String>>, String> {
    let mut connection = connect(ctx, target).await?;
    let (sender, receiver) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        let mut rows = sqlx::query(AssertSqlSafe(select)).fetch(&mut connection);
        let mut buffer = BytesMut::with_capacity(1 << 17);
        while let Some(row) = rows.next().await {
            let row = match row {
                Ok(row) => row,
                Err(e) => {
                    let _ = sender.send(Err(describe(&e))).await;
                    return;
                }
            };
            for i in 0..row.len() {
                if i > 0 {
                    buffer.extend_from_slice(b"\t");
                }
                match row.try_get::<Option<&str>, _>(i) {
                    Ok(Some(value)) => super::rows::escape(value, &mut buffer),
                    Ok(None) => buffer.extend_from_slice(b"\\N"),
                    Err(e) => {
                        let _ = sender.send(Err(describe(&e))).await;
                        return;
                    }
                }
            }
            buffer.extend_from_slice(b"\n");
            if buffer.len() >= 1 << 16 && sender.send(Ok(buffer.split().freeze())).await.is_err() {
                return;
            }
        }
        if !buffer.is_empty() {
            let _ = sender.send(Ok(buffer.split().freeze())).await;
        }
    });
    Ok(receiver)
}
