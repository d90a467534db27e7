//! Kafka Connect's REST API: one call with the retry policy, and the connector calls the kinds use.
//!
//! Retries: `409 Conflict` and `500` "a rebalance is expected" (a rebalance is in progress), `503`/`504`
//! and a `404` without a JSON body (the worker is still starting) are tried again with exponential backoff and jitter for up to
//! [`BUSY_DEADLINE`]; a connection that cannot be made is tried for [`DOWN_DEADLINE`] only, so that a worker
//! that is down fails a plan fast. Every other answer goes back to the caller, and an error names the
//! connector, the endpoint and the message Connect returned.

use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::live::{Credential, Ctx, ProviderError};

/// How long a call refused because Connect is busy (a rebalance, start-up) is tried again.
pub const BUSY_DEADLINE: Duration = Duration::from_secs(60);
/// How long a call whose connection fails is tried again: a worker restarting comes back within it, one
/// that is down fails the run fast.
pub const DOWN_DEADLINE: Duration = Duration::from_secs(3);

/// The HTTP client of one run, built on first use (building one loads the TLS roots).
#[derive(Default)]
pub struct Http(OnceLock<reqwest::Client>);

impl Http {
    fn client(&self) -> &reqwest::Client {
        self.0.get_or_init(|| {
            reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(3))
                .timeout(Duration::from_secs(30))
                .user_agent("ds")
                .build()
                .expect("the HTTP client's settings are valid")
        })
    }
}

/// An answer from Connect: the status and the body (`null` when empty or not JSON).
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The JSON body.
    pub body: Value,
}

impl Reply {
    /// Connect's error message (`{"error_code":..,"message":..}`), or the body as text.
    pub fn message(&self) -> String {
        match self.body.get("message").and_then(Value::as_str) {
            Some(message) => message.to_string(),
            None if self.body.is_null() => "(no body)".to_string(),
            None => self.body.to_string(),
        }
    }
}

/// One connector on one Connect cluster, as seen by one operation of one resource.
pub struct Connector<'a> {
    ctx: &'a Ctx,
    /// The resource.
    pub address: &'a str,
    /// `read`, `create`, ...
    pub operation: &'static str,
    /// `http://host:port`, without a trailing slash.
    pub base: String,
    /// The connector's name.
    pub name: String,
    auth: Option<Credential>,
}

/// The connector's state and its tasks' states, from `GET /connectors/{name}/status`.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    /// `RUNNING`, `PAUSED`, `STOPPED`, `FAILED`, `UNASSIGNED`, `RESTARTING`.
    pub connector: String,
    /// The connector's own trace, when it failed.
    pub connector_trace: Option<String>,
    /// Per task: id, state, trace.
    pub tasks: Vec<(u64, String, Option<String>)>,
}

impl Status {
    fn parse(body: &Value) -> Status {
        let connector = &body["connector"];
        Status {
            connector: connector["state"].as_str().unwrap_or("UNKNOWN").to_string(),
            connector_trace: connector["trace"].as_str().map(str::to_string),
            tasks: body["tasks"]
                .as_array()
                .map(|tasks| {
                    tasks
                        .iter()
                        .map(|t| {
                            (
                                t["id"].as_u64().unwrap_or(0),
                                t["state"].as_str().unwrap_or("UNKNOWN").to_string(),
                                t["trace"].as_str().map(str::to_string),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Whether the connector or a task has failed.
    pub fn failed(&self) -> bool {
        self.connector == "FAILED" || self.tasks.iter().any(|(_, state, _)| state == "FAILED")
    }

    /// What failed and why: `task 0 FAILED: <first lines of its trace>`.
    pub fn failure(&self) -> String {
        let mut parts = Vec::new();
        if self.connector == "FAILED" {
            parts.push(format!(
                "connector FAILED: {}",
                excerpt(self.connector_trace.as_deref())
            ));
        }
        for (id, state, trace) in &self.tasks {
            if state == "FAILED" {
                parts.push(format!("task {id} FAILED: {}", excerpt(trace.as_deref())));
            }
        }
        parts.join("; ")
    }

    /// `RUNNING, 1/1 tasks RUNNING`.
    pub fn summary(&self) -> String {
        let running = self.tasks.iter().filter(|(_, s, _)| s == "RUNNING").count();
        format!(
            "{}, {running}/{} tasks RUNNING",
            self.connector,
            self.tasks.len()
        )
    }
}

/// The first line of a Java trace and its `Caused by:` lines, each cut short: enough to say why.
pub fn excerpt(trace: Option<&str>) -> String {
    let Some(trace) = trace else {
        return "(no trace)".to_string();
    };
    let mut lines = trace.lines();
    let mut kept: Vec<String> = lines.next().map(cut).into_iter().collect();
    kept.extend(
        lines
            .map(str::trim)
            .filter(|l| l.starts_with("Caused by:"))
            .take(3)
            .map(cut),
    );
    kept.join(" / ")
}

fn cut(line: &str) -> String {
    const MAX: usize = 300;
    let line = line.trim();
    match line.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line.to_string(),
    }
}

/// A path segment, percent-encoded where it is not plain.
fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A random factor in [0.5, 1.5) for jitter, without a random-number crate.
fn jitter() -> f64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    0.5 + (hasher.finish() % 1000) as f64 / 1000.0
}

/// `error` and its causes, on one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

impl<'a> Connector<'a> {
    /// The connector a resource's attributes name (`connect_url`, `name`, optional `connect_credential`
    /// for HTTP basic auth).
    pub fn of(
        ctx: &'a Ctx,
        address: &'a str,
        operation: &'static str,
        attributes: &Value,
    ) -> Result<Connector<'a>, ProviderError> {
        let missing = |what: &str| ProviderError {
            address: address.to_string(),
            operation: operation.to_string(),
            endpoint: "(unknown)".into(),
            message: format!("the attributes do not say {what}"),
            transient: false,
        };
        let base = attributes
            .get("connect_url")
            .and_then(Value::as_str)
            .filter(|u| !u.is_empty())
            .ok_or_else(|| missing("which Kafka Connect it is on (connect_url)"))?
            .trim_end_matches('/')
            .to_string();
        let name = attributes
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| missing("the connector's name (name)"))?
            .to_string();
        let mut connector = Connector {
            ctx,
            address,
            operation,
            base,
            name,
            auth: None,
        };
        if let Some(credential) = attributes.get("connect_credential").and_then(Value::as_str) {
            connector.auth = Some(
                ctx.credentials
                    .resolve(credential)
                    .map_err(|message| connector.error("", message, false))?,
            );
        }
        Ok(connector)
    }

    /// An error at `path` (relative to the Connect URL).
    pub fn error(&self, path: &str, message: String, transient: bool) -> ProviderError {
        ProviderError {
            address: self.address.to_string(),
            operation: self.operation.to_string(),
            endpoint: format!("{}{path}", self.base),
            message,
            transient,
        }
    }

    /// An error for an answer that was not the expected one.
    pub fn unexpected(&self, method: &Method, path: &str, reply: &Reply) -> ProviderError {
        self.error(
            path,
            format!(
                "connector {}: {method} answered {}: {}",
                self.name,
                reply.status,
                reply.message()
            ),
            false,
        )
    }

    /// One call, with the retry policy of this module.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, ProviderError> {
        let url = format!("{}{path}", self.base);
        let started = Instant::now();
        let mut delay = Duration::from_millis(100);
        loop {
            let mut request = self.ctx.connect.client().request(method.clone(), &url);
            if let Some(auth) = &self.auth {
                request = request.basic_auth(&auth.user, Some(auth.password.expose()));
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let (retry, deadline, outcome) = match request.send().await {
                Err(error) => {
                    let down = error.is_connect() || error.is_timeout();
                    let message = format!("cannot reach Kafka Connect: {}", chain(&error));
                    (down, DOWN_DEADLINE, Err(self.error(path, message, down)))
                }
                Ok(response) => {
                    let status = response.status().as_u16();
                    let text = response.text().await.unwrap_or_default();
                    let parsed: Option<Value> = serde_json::from_str(&text).ok();
                    // A rebalance answers 409, or 500 "Request cannot be completed because a rebalance
                    // is expected"; a worker still starting answers 404 without a JSON body.
                    let rebalancing = status == 500
                        && parsed
                            .as_ref()
                            .and_then(|b| b.get("message"))
                            .and_then(Value::as_str)
                            .is_some_and(|m| m.contains("rebalance"));
                    let busy = matches!(status, 409 | 503 | 504)
                        || rebalancing
                        || (status == 404 && parsed.is_none());
                    let body = parsed.unwrap_or_else(|| {
                        if text.trim().is_empty() {
                            Value::Null
                        } else {
                            Value::String(cut(&text))
                        }
                    });
                    (busy, BUSY_DEADLINE, Ok(Reply { status, body }))
                }
            };
            if !retry || started.elapsed() + delay > deadline {
                return match outcome {
                    Ok(reply) if retry => Err(self.error(
                        path,
                        format!(
                            "connector {}: Connect stayed busy for {} s ({}: {})",
                            self.name,
                            deadline.as_secs(),
                            reply.status,
                            reply.message()
                        ),
                        true,
                    )),
                    other => other,
                };
            }
            tokio::time::sleep(delay.mul_f64(jitter())).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }

    fn path(&self, rest: &str) -> String {
        format!("/connectors/{}{rest}", segment(&self.name))
    }

    /// The connector's config as Connect returns it, without the `name` key Connect adds; `None` when
    /// there is no such connector.
    pub async fn config(&self) -> Result<Option<Map<String, Value>>, ProviderError> {
        let path = self.path("/config");
        let reply = self.call(Method::GET, &path, None).await?;
        match (reply.status, reply.body) {
            (404, _) => Ok(None),
            (200, Value::Object(mut config)) => {
                config.remove("name");
                Ok(Some(config))
            }
            (status, body) => Err(self.unexpected(&Method::GET, &path, &Reply { status, body })),
        }
    }

    /// The connector's status; `None` when there is no such connector.
    pub async fn status(&self) -> Result<Option<Status>, ProviderError> {
        let path = self.path("/status");
        let reply = self.call(Method::GET, &path, None).await?;
        match reply.status {
            404 => Ok(None),
            200 => Ok(Some(Status::parse(&reply.body))),
            _ => Err(self.unexpected(&Method::GET, &path, &reply)),
        }
    }

    /// The configs of the connector's tasks (`GET /connectors/{name}/tasks`).
    pub async fn task_configs(&self) -> Result<Vec<Value>, ProviderError> {
        let path = self.path("/tasks");
        let reply = self.call(Method::GET, &path, None).await?;
        match (reply.status, &reply.body) {
            (200, Value::Array(tasks)) => Ok(tasks.iter().map(|t| t["config"].clone()).collect()),
            (404, _) => Ok(Vec::new()),
            _ => Err(self.unexpected(&Method::GET, &path, &reply)),
        }
    }

    /// Asks the plugin whether `config` is valid (`PUT /connector-plugins/{class}/config/validate`), so
    /// that a bad config is refused with the plugin's reasons before anything changes.
    pub async fn validate(&self, config: &Map<String, Value>) -> Result<(), ProviderError> {
        let class = config
            .get("connector.class")
            .and_then(Value::as_str)
            .ok_or_else(|| self.error("", "the config has no connector.class".into(), false))?;
        let path = format!("/connector-plugins/{}/config/validate", segment(class));
        let mut body = config.clone();
        body.insert("name".into(), json!(self.name));
        let reply = self
            .call(Method::PUT, &path, Some(&Value::Object(body)))
            .await?;
        if reply.status == 404 {
            return Err(self.error(
                &path,
                format!(
                    "connector {}: Kafka Connect has no plugin {class}: install it on the workers' plugin.path",
                    self.name
                ),
                false,
            ));
        }
        if reply.status != 200 {
            return Err(self.unexpected(&Method::PUT, &path, &reply));
        }
        if reply.body["error_count"].as_u64().unwrap_or(0) == 0 {
            return Ok(());
        }
        let problems: Vec<String> = reply.body["configs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| {
                let errors = c["value"]["errors"].as_array()?;
                if errors.is_empty() {
                    return None;
                }
                let key = c["value"]["name"].as_str().unwrap_or("?");
                let why: Vec<&str> = errors.iter().filter_map(Value::as_str).collect();
                Some(format!("{key}: {}", why.join("; ")))
            })
            .collect();
        Err(self.error(
            &path,
            format!(
                "connector {}: the {class} plugin refuses the config: {}",
                self.name,
                problems.join(" | ")
            ),
            false,
        ))
    }

    /// Creates or updates the connector (`PUT /connectors/{name}/config`); true when it was created.
    pub async fn put(&self, config: &Map<String, Value>) -> Result<bool, ProviderError> {
        let path = self.path("/config");
        let reply = self
            .call(Method::PUT, &path, Some(&Value::Object(config.clone())))
            .await?;
        match reply.status {
            201 => Ok(true),
            200 => Ok(false),
            _ => Err(self.unexpected(&Method::PUT, &path, &reply)),
        }
    }

    /// Deletes the connector and waits until Connect no longer lists it (its tasks stopped, so that a
    /// replication slot it read can be dropped next); one that is gone already is fine.
    pub async fn delete(&self) -> Result<(), ProviderError> {
        let path = self.path("");
        let reply = self.call(Method::DELETE, &path, None).await?;
        if !matches!(reply.status, 200 | 204 | 404) {
            return Err(self.unexpected(&Method::DELETE, &path, &reply));
        }
        let started = Instant::now();
        while started.elapsed() < BUSY_DEADLINE {
            if self.status().await?.is_none() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(self.error(
            &path,
            format!(
                "connector {}: still listed {} s after it was deleted",
                self.name,
                BUSY_DEADLINE.as_secs()
            ),
            true,
        ))
    }

    /// Forgets the connector's offsets (`PUT /stop`, then `DELETE /offsets`), before it is deleted for
    /// good: Connect keeps offsets by connector name, and a connector created later under the same name
    /// (the store added again, with a new slot) would otherwise resume from a position that no longer
    /// exists. A worker without these endpoints (before Kafka 3.6) keeps them.
    pub async fn forget_offsets(&self) -> Result<(), ProviderError> {
        if self.stop().await? {
            self.delete_offsets().await?;
        }
        Ok(())
    }

    /// Stops the connector (`PUT /connectors/{name}/stop`) and waits until it and its tasks are STOPPED;
    /// false when the worker has no such endpoint (before Kafka 3.5).
    pub async fn stop(&self) -> Result<bool, ProviderError> {
        let stop = self.path("/stop");
        let reply = self.call(Method::PUT, &stop, None).await?;
        match reply.status {
            200..=299 => {}
            404 | 405 => return Ok(false),
            _ => return Err(self.unexpected(&Method::PUT, &stop, &reply)),
        }
        let started = Instant::now();
        while self.status().await?.is_some_and(|s| {
            s.connector != "STOPPED" || s.tasks.iter().any(|(_, st, _)| st != "STOPPED")
        }) {
            if started.elapsed() > BUSY_DEADLINE {
                return Err(self.error(
                    &stop,
                    format!(
                        "connector {}: not STOPPED after {} s",
                        self.name,
                        BUSY_DEADLINE.as_secs()
                    ),
                    true,
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(true)
    }

    /// `DELETE /connectors/{name}/offsets` (the connector must be stopped).
    pub async fn delete_offsets(&self) -> Result<(), ProviderError> {
        let offsets = self.path("/offsets");
        let reply = self.call(Method::DELETE, &offsets, None).await?;
        match reply.status {
            200..=299 | 404 | 405 => Ok(()),
            _ => Err(self.unexpected(&Method::DELETE, &offsets, &reply)),
        }
    }

    /// The connector's committed source offsets (`GET /connectors/{name}/offsets`): the `offset` objects.
    pub async fn offsets(&self) -> Result<Vec<Value>, ProviderError> {
        let path = self.path("/offsets");
        let reply = self.call(Method::GET, &path, None).await?;
        match reply.status {
            200 => Ok(reply.body["offsets"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|o| o["offset"].clone())
                .collect()),
            404 | 405 => Ok(Vec::new()),
            _ => Err(self.unexpected(&Method::GET, &path, &reply)),
        }
    }

    /// `PUT /connectors/{name}/pause` or `/resume`.
    pub async fn set_paused(&self, paused: bool) -> Result<(), ProviderError> {
        let path = self.path(if paused { "/pause" } else { "/resume" });
        let reply = self.call(Method::PUT, &path, None).await?;
        match reply.status {
            200..=299 => Ok(()),
            _ => Err(self.unexpected(&Method::PUT, &path, &reply)),
        }
    }

    /// Restarts the connector and its tasks: only the failed ones, or all (to re-read rotated secrets).
    pub async fn restart(&self, only_failed: bool) -> Result<(), ProviderError> {
        let path = self.path(&format!(
            "/restart?includeTasks=true&onlyFailed={only_failed}"
        ));
        let reply = self.call(Method::POST, &path, None).await?;
        match reply.status {
            200..=299 => Ok(()),
            _ => Err(self.unexpected(&Method::POST, &path, &reply)),
        }
    }

    /// Waits until the connector and every task run (or are paused, when `paused`), for up to `timeout`.
    /// A failed connector or task fails with its trace excerpt; so does a timeout, with the last status.
    pub async fn settle(&self, paused: bool, timeout: Duration) -> Result<Status, ProviderError> {
        let want = if paused { "PAUSED" } else { "RUNNING" };
        let started = Instant::now();
        let mut last = None;
        while started.elapsed() < timeout {
            if let Some(status) = self.status().await? {
                if status.failed() {
                    return Err(self.error(
                        &self.path("/status"),
                        format!("connector {}: {}", self.name, status.failure()),
                        false,
                    ));
                }
                if status.connector == want
                    && !status.tasks.is_empty()
                    && status.tasks.iter().all(|(_, s, _)| s == want)
                {
                    return Ok(status);
                }
                last = Some(status);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(self.error(
            &self.path("/status"),
            format!(
                "connector {}: not {want} after {} s ({})",
                self.name,
                timeout.as_secs(),
                last.map_or("no status".to_string(), |s| s.summary())
            ),
            true,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_excerpt_keeps_the_first_line_and_the_causes() {
        let trace = "org.apache.kafka.connect.errors.ConnectException: boom\n\tat a.b(C.java:1)\n\
                     Caused by: org.postgresql.util.PSQLException: ERROR: publication \"x\" does not exist\n\tat d.e(F.java:2)";
        assert_eq!(
            excerpt(Some(trace)),
            "org.apache.kafka.connect.errors.ConnectException: boom / Caused by: org.postgresql.util.PSQLException: ERROR: publication \"x\" does not exist"
        );
        assert_eq!(excerpt(None), "(no trace)");
    }

    #[test]
    fn names_are_encoded_as_path_segments() {
        assert_eq!(segment("ds-shop_source.v1"), "ds-shop_source.v1");
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn a_status_tells_failure_and_summary() {
        let body = json!({"name": "c", "connector": {"state": "RUNNING"}, "tasks": [
            {"id": 0, "state": "RUNNING"}, {"id": 1, "state": "FAILED", "trace": "E: x\n at y"}]});
        let status = Status::parse(&body);
        assert!(status.failed());
        assert_eq!(status.failure(), "task 1 FAILED: E: x");
        assert_eq!(status.summary(), "RUNNING, 1/2 tasks RUNNING");
    }
}
