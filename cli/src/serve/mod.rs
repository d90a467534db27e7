//! `ds serve`: the model as a read-only REST API (JSON), for the programs that consume it. The model is read
//! and validated once; every response is computed at start-up (`catalog`), so a request is a lookup and
//! copies of the server behind a load balancer need no coordination.

mod catalog;
pub(crate) mod openapi;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use planner::diag::Severity;
use serde_json::json;

use crate::EXIT_OK;

#[derive(clap::Args)]
pub(crate) struct ServeArgs {
    /// Serve the model as it is at this git revision (read from git objects) instead of the working tree
    #[arg(long, value_name = "REV")]
    rev: Option<String>,
    /// Where to listen
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
}

/// The server's state: the catalog and the two fixed documents.
struct Served {
    catalog: catalog::Catalog,
    openapi: Bytes,
    healthz: Bytes,
    etag: HeaderValue,
}

/// The collections a path may name, in the order of the path's segments, and how each name is judged.
const NAME_RULE: &str =
    "names are letters, digits and underscores, starting with a letter, at most 63 characters";

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 63
}

pub(crate) fn run(dir: &Path, args: &ServeArgs) -> anyhow::Result<u8> {
    let started = std::time::Instant::now();
    let sources = match &args.rev {
        Some(rev) => planner::source::read_git(dir, rev)?,
        None => planner::source::read_dir(dir)?,
    };
    let read = started.elapsed();
    let (model, found) = planner::check(&sources);
    let validated = started.elapsed();
    if found.has_errors() {
        let text = crate::views::diagnostics::text(&sources, &found, false);
        eprint!("{text}");
        bail!(
            "the model has {} error(s): ds serve starts only on a valid model",
            found.count(Severity::Error)
        );
    }
    let hash = planner::planfile::model_hash(&sources);
    let catalog = catalog::build(&model, hash.clone(), args.rev.clone());
    let served = Arc::new(Served {
        openapi: Bytes::from(serde_json::to_vec(&openapi::document())?),
        healthz: Bytes::from(serde_json::to_vec(&json!({
            "status": "ok",
            "model_hash": hash,
            "revision": catalog.revision,
            "datasets": catalog.datasets,
        }))?),
        etag: HeaderValue::from_str(&format!("\"{hash}\""))?,
        catalog,
    });
    std::mem::forget(model);
    let indexed = started.elapsed();
    let runtime = super::commands::runtime()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let local = listener.local_addr()?;
        // SIGTERM and SIGINT are listened for before the server says it listens: registered later (when
        // `axum::serve` first polls its shutdown future), a SIGTERM sent as soon as that line shows killed the
        // process or was lost (the server then ran on).
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("handling SIGTERM")?;
        let mut interrupt = signal(SignalKind::interrupt()).context("handling SIGINT")?;
        eprintln!(
            "ds serve: listening on http://{local} (model {}, {} datasets, ready in {:.2} s: read {:.2} s, validate \
             {:.2} s, index {:.2} s); GET /openapi.json describes the API",
            &hash.trim_start_matches("sha256:")[..12],
            served.catalog.datasets,
            started.elapsed().as_secs_f64(),
            read.as_secs_f64(),
            (validated - read).as_secs_f64(),
            (indexed - validated).as_secs_f64(),
        );
        let app = axum::Router::new().fallback(move |method: Method, headers: HeaderMap, uri: axum::http::Uri| {
            let served = Arc::clone(&served);
            async move { answer(&served, &method, &headers, uri.path()) }
        });
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = term.recv() => {}
                }
                eprintln!("ds serve: stopping");
            })
            .await
            .context("serving")?;
        anyhow::Ok(())
    })?;
    Ok(EXIT_OK)
}

fn json_response(status: StatusCode, body: Bytes, etag: Option<&HeaderValue>) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(etag) = etag {
        headers.insert(header::ETAG, etag.clone());
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    response
}

fn error(status: StatusCode, message: String, extra: serde_json::Value) -> Response {
    let mut value = json!({ "error": message });
    if let (Some(object), Some(more)) = (value.as_object_mut(), extra.as_object()) {
        object.extend(more.clone());
    }
    json_response(
        status,
        Bytes::from(serde_json::to_vec(&value).unwrap_or_default()),
        None,
    )
}

/// Whether `If-None-Match` names this ETag (or is `*`).
fn not_modified(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let Some(value) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let ours = etag.to_str().unwrap_or("");
    value
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag == ours || tag.strip_prefix("W/") == Some(ours))
}

/// The response to one request.
fn answer(served: &Served, method: &Method, headers: &HeaderMap, path: &str) -> Response {
    if method != Method::GET && method != Method::HEAD {
        let mut response = error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not served: the API is read-only (GET)"),
            json!({}),
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    // Each segment is decoded on its own: an escaped `/` (`%2F`) stays in its segment (and fails the name rule)
    // rather than making a path of its own.
    let trimmed = path.trim_end_matches('/');
    let decoded: Vec<String> = trimmed
        .strip_prefix('/')
        .unwrap_or(trimmed)
        .split('/')
        .map(percent_decode)
        .collect();
    let joined = format!("/{}", decoded.join("/"));
    let path = joined.as_str();
    match path {
        "/healthz" => return json_response(StatusCode::OK, served.healthz.clone(), None),
        "/openapi.json" => {
            return json_response(StatusCode::OK, served.openapi.clone(), None);
        }
        _ => {}
    }
    // Names are matched case-insensitively; a segment that cannot be a name is a bad request.
    let segments: Vec<&str> = decoded.iter().map(String::as_str).collect();
    let names: Vec<(usize, &str)> = match segments.as_slice() {
        ["v1", "zones", zone] => vec![(2, zone)],
        ["v1", "zones", zone, "teams", team] => vec![(2, zone), (4, team)],
        ["v1", "datastores", store] | ["v1", "datastores", store, "dependants"] => vec![(2, store)],
        ["v1", "datastores", store, "datasets", dataset]
        | [
            "v1",
            "datastores",
            store,
            "datasets",
            dataset,
            "json-schema" | "avro",
        ] => {
            vec![(2, store), (4, dataset)]
        }
        ["v1", "workspaces", ws] => vec![(2, ws)],
        _ => Vec::new(),
    };
    for (_, name) in &names {
        if !valid_name(name) {
            return error(
                StatusCode::BAD_REQUEST,
                format!("`{name}` is not a valid name: {NAME_RULE}"),
                json!({ "asked": path }),
            );
        }
    }
    let key = path.to_ascii_lowercase();
    let whole_segments = !segments.iter().any(|s| s.contains('/'));
    if let Some(body) = served.catalog.bodies.get(&key).filter(|_| whole_segments) {
        if not_modified(headers, &served.etag) {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            response
                .headers_mut()
                .insert(header::ETAG, served.etag.clone());
            return response;
        }
        return json_response(StatusCode::OK, body.clone(), Some(&served.etag));
    }
    if names.is_empty() {
        return no_endpoint(path);
    }
    not_found(served, path, &segments)
}

fn no_endpoint(path: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!("no such endpoint: {path} (GET /openapi.json lists them)"),
        json!({ "asked": path }),
    )
}

/// `%XX` escapes undone (names are ASCII; anything else is kept as it came, and fails the name rule).
fn percent_decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = path.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A 404 that names what was asked and, when one is close, what was probably meant.
fn not_found(served: &Served, path: &str, segments: &[&str]) -> Response {
    let names = |collection: &str| -> Vec<&str> {
        served
            .catalog
            .names
            .get(collection)
            .map(|v| v.iter().map(String::as_str).collect())
            .unwrap_or_default()
    };
    let suggest = |word: &str, candidates: Vec<&str>| -> Vec<String> {
        let mut scored: Vec<(usize, &str)> = candidates
            .into_iter()
            .map(|c| {
                (
                    planner::names::edit_distance(
                        &word.to_ascii_lowercase(),
                        &c.to_ascii_lowercase(),
                    ),
                    c,
                )
            })
            .filter(|(d, _)| *d <= (word.len() / 3).max(2))
            .collect();
        scored.sort();
        scored
            .into_iter()
            .take(3)
            .map(|(_, c)| c.to_string())
            .collect()
    };
    let (what, asked, close) = match segments {
        ["v1", "zones", zone] => ("zone", zone.to_string(), suggest(zone, names("zones"))),
        ["v1", "zones", zone, "teams", team] => {
            let asked = format!("{zone}/{team}");
            let close = suggest(&asked, names("teams"));
            ("team", asked, close)
        }
        ["v1", "datastores", store, ..]
            if !names("datastores")
                .iter()
                .any(|s| s.eq_ignore_ascii_case(store)) =>
        {
            (
                "datastore",
                store.to_string(),
                suggest(store, names("datastores")),
            )
        }
        ["v1", "datastores", store, "datasets", dataset, ..] => {
            let asked = format!("{store}/{dataset}");
            let in_store: Vec<&str> = names("datasets")
                .into_iter()
                .filter(|d| {
                    d.split_once('/')
                        .is_some_and(|(s, _)| s.eq_ignore_ascii_case(store))
                })
                .collect();
            let close = suggest(&asked, in_store);
            ("dataset", asked, close)
        }
        ["v1", "workspaces", ws] => (
            "workspace",
            ws.to_string(),
            suggest(ws, names("workspaces")),
        ),
        _ => return no_endpoint(path),
    };
    let hint = if close.is_empty() {
        String::new()
    } else {
        format!("; did you mean {}?", close.join(", "))
    };
    error(
        StatusCode::NOT_FOUND,
        format!("no {what} `{asked}` in the model{hint}"),
        json!({ "asked": asked, "kind": what, "did_you_mean": close }),
    )
}
