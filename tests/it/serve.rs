//! `ds serve` over real HTTP on a loopback port: every endpoint against its snapshot, the errors (404 with
//! close matches, 400, 405), conditional requests (ETag, 304), every response against `/openapi.json`, an
//! invalid model refused, and `--rev`.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A running `ds serve`, stopped with SIGTERM (and checked to exit 0) when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    listener.local_addr().unwrap().port()
}

impl Server {
    /// `ds serve -C model [extra] --listen 127.0.0.1:PORT`, once it says it is listening.
    fn start(model: &Path, extra: &[&str]) -> Server {
        for attempt in 1..=3 {
            match Self::try_start(model, extra) {
                Ok(server) => return server,
                // Another process took the port between our probe and the server's bind: try another.
                Err(text) if attempt < 3 && text.contains("cannot listen") => continue,
                Err(text) => panic!("{text}"),
            }
        }
        unreachable!()
    }

    fn try_start(model: &Path, extra: &[&str]) -> Result<Server, String> {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut child = Command::new(tests::ds_binary())
            .arg("serve")
            .arg("-C")
            .arg(model)
            .args(extra)
            .args(["--listen", &addr.to_string()])
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ds serve starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (ready, listening) = mpsc::channel();
        {
            let pipe = child.stderr.take().unwrap();
            let stderr = Arc::clone(&stderr);
            // Drains stderr for the server's whole life (a full pipe would block it).
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    stderr.lock().unwrap().push_str(&format!("{line}\n"));
                    if line.starts_with("ds serve: listening on ") {
                        let _ = ready.send(line);
                    }
                }
            });
        }
        match listening.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => {
                assert!(line.contains(&format!("http://{addr} ")), "{line}");
                Ok(Server {
                    child,
                    addr,
                    stderr,
                })
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait().expect("ds serve is waited for");
                Err(format!(
                    "ds serve exited ({status}) before listening:\n{}",
                    stderr.lock().unwrap()
                ))
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!(
                    "ds serve did not listen within 20 s:\n{}",
                    stderr.lock().unwrap()
                ))
            }
        }
    }

    /// The showcase, served from the working tree.
    fn showcase() -> Server {
        Server::start(&tests::root().join("examples/showcase"), &[])
    }

    fn get(&self, path: &str) -> Reply {
        self.call("GET", path, &[])
    }

    fn call(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
        http(self.addr, method, path, headers)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        let status: Option<ExitStatus> = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break None;
                }
            }
        };
        if !std::thread::panicking() {
            assert!(sent, "kill -TERM failed");
            assert!(
                status.is_some_and(|s| s.success()),
                "ds serve did not stop cleanly on SIGTERM ({status:?}):\n{}",
                self.stderr.lock().unwrap()
            );
        }
    }
}

/// One HTTP response.
#[derive(Debug)]
struct Reply {
    status: u16,
    /// Names lowercased.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// The ETag without its quotes.
    fn etag(&self) -> String {
        let tag = self.header("etag").expect("an ETag");
        tag.trim_matches('"').to_string()
    }
}

/// One HTTP/1.1 exchange on a fresh connection (`Connection: close`: the body is what comes before EOF).
fn http(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("the server accepts");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if method == "POST" {
        request.push_str("Content-Length: 0\r\n");
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("the response is read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers: {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8(raw[..split].to_vec()).expect("ASCII headers");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .map(|line| {
            let (name, value) = line.split_once(':').expect("a header line");
            (name.trim().to_ascii_lowercase(), value.trim().to_string())
        })
        .collect();
    let mut reply = Reply {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    };
    if reply
        .header("transfer-encoding")
        .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
    {
        reply.body = dechunk(&reply.body);
    } else if method != "HEAD"
        && let Some(length) = reply.header("content-length")
    {
        assert_eq!(
            length.parse::<usize>().unwrap(),
            reply.body.len(),
            "{method} {path}: Content-Length"
        );
    }
    reply
}

/// A chunked body put together.
fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("a chunk size line");
        let line = std::str::from_utf8(&data[..end]).unwrap();
        let size = usize::from_str_radix(line.split(';').next().unwrap().trim(), 16).unwrap();
        data = &data[end + 2..];
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// The JSON body pretty-printed, with the model hash replaced by `[hash]`.
fn pretty(reply: &Reply, hash: &str) -> String {
    let text = String::from_utf8(reply.body.clone())
        .unwrap()
        .replace(hash, "[hash]");
    let value: Value = serde_json::from_str(&text).unwrap();
    serde_json::to_string_pretty(&value).unwrap()
}

/// Every endpoint for real names of the showcase: snapshot name, path template, path. Names are chosen for
/// what they show: every kind of capture, a transformer output, datasets with decimal, date, timestamp,
/// timestamptz, uuid, bytea and json columns, a forensic group, a consumer of a transformer output.
fn showcase_requests() -> Vec<(String, &'static str, String)> {
    let mut requests: Vec<(String, &'static str, String)> = vec![
        ("healthz".into(), "/healthz", "/healthz".into()),
        ("openapi".into(), "/openapi.json", "/openapi.json".into()),
        ("ecosystem".into(), "/v1/ecosystem", "/v1/ecosystem".into()),
        ("zones".into(), "/v1/zones", "/v1/zones".into()),
        (
            "zone_usa".into(),
            "/v1/zones/{zone}",
            "/v1/zones/USA".into(),
        ),
        (
            "zone_marketing".into(),
            "/v1/zones/{zone}",
            "/v1/zones/Marketing".into(),
        ),
        ("teams".into(), "/v1/teams", "/v1/teams".into()),
        (
            "team_usa_crm".into(),
            "/v1/zones/{zone}/teams/{team}",
            "/v1/zones/USA/teams/crm".into(),
        ),
        (
            "team_analytics_insights".into(),
            "/v1/zones/{zone}/teams/{team}",
            "/v1/zones/Analytics/teams/insights".into(),
        ),
        (
            "datastores".into(),
            "/v1/datastores",
            "/v1/datastores".into(),
        ),
        (
            "workspaces".into(),
            "/v1/workspaces",
            "/v1/workspaces".into(),
        ),
    ];
    for store in [
        "campaign_stats_db",
        "clickstream",
        "customer_db",
        "customer_segments_db",
        "legacy_orders_db",
        "orders_db",
        "product_catalog",
    ] {
        requests.push((
            format!("datastore_{store}"),
            "/v1/datastores/{datastore}",
            format!("/v1/datastores/{store}"),
        ));
        requests.push((
            format!("dependants_{store}"),
            "/v1/datastores/{datastore}/dependants",
            format!("/v1/datastores/{store}/dependants"),
        ));
    }
    for (store, dataset) in [
        ("product_catalog", "products"),
        ("customer_segments_db", "customer_segments"),
        ("clickstream", "ad_clicks"),
        ("customer_db", "customers"),
    ] {
        let base = format!("/v1/datastores/{store}/datasets/{dataset}");
        requests.push((
            format!("dataset_{store}_{dataset}"),
            "/v1/datastores/{datastore}/datasets/{dataset}",
            base.clone(),
        ));
        requests.push((
            format!("json_schema_{store}_{dataset}"),
            "/v1/datastores/{datastore}/datasets/{dataset}/json-schema",
            format!("{base}/json-schema"),
        ));
        requests.push((
            format!("avro_{store}_{dataset}"),
            "/v1/datastores/{datastore}/datasets/{dataset}/avro",
            format!("{base}/avro"),
        ));
    }
    for ws in ["customer_360", "segmentation_job", "finance_reconciliation"] {
        requests.push((
            format!("workspace_{ws}"),
            "/v1/workspaces/{workspace}",
            format!("/v1/workspaces/{ws}"),
        ));
    }
    requests
}

#[test]
fn every_endpoint_answers_as_in_its_snapshot() {
    let server = Server::showcase();
    let hash = server.get("/v1/zones").etag();
    assert!(hash.starts_with("sha256:"), "{hash}");
    for (name, _, path) in showcase_requests() {
        let reply = server.get(&path);
        assert_eq!(reply.status, 200, "{path}: {reply:?}");
        assert_eq!(reply.header("content-type"), Some("application/json"));
        if path.starts_with("/v1/") {
            assert_eq!(reply.etag(), hash, "{path}: the ETag is the model hash");
            assert_eq!(reply.header("cache-control"), Some("no-cache"), "{path}");
        }
        if path == "/healthz" || path == "/v1/ecosystem" {
            assert_eq!(reply.json()["model_hash"], hash, "{path}");
            assert_eq!(reply.json()["revision"], Value::Null, "{path}");
        }
        insta::assert_snapshot!(name, pretty(&reply, &hash));
    }
}

/// Requests that fail or answer conditionally: path template (`None`: no endpoint), method, path, headers,
/// the status expected.
type Case = (
    Option<&'static str>,
    &'static str,
    String,
    Vec<(&'static str, String)>,
    u16,
);

fn error_cases(etag: &str) -> Vec<Case> {
    let long = "a".repeat(64);
    vec![
        (
            Some("/v1/datastores/{datastore}"),
            "GET",
            "/v1/datastores/custmer_db".into(),
            vec![],
            404,
        ),
        (
            Some("/v1/datastores/{datastore}/dependants"),
            "GET",
            "/v1/datastores/no_such_store/dependants".into(),
            vec![],
            404,
        ),
        (
            Some("/v1/datastores/{datastore}/datasets/{dataset}"),
            "GET",
            "/v1/datastores/customer_db/datasets/custmers".into(),
            vec![],
            404,
        ),
        (
            Some("/v1/datastores/{datastore}/datasets/{dataset}/avro"),
            "GET",
            "/v1/datastores/customer_db/datasets/orders/avro".into(),
            vec![],
            404,
        ),
        (
            Some("/v1/zones/{zone}"),
            "GET",
            "/v1/zones/Europe".into(),
            vec![],
            404,
        ),
        (
            Some("/v1/zones/{zone}/teams/{team}"),
            "GET",
            "/v1/zones/USA/teams/crn".into(),
            vec![],
            404,
        ),
        (
            Some("/v1/workspaces/{workspace}"),
            "GET",
            "/v1/workspaces/customer_306".into(),
            vec![],
            404,
        ),
        (None, "GET", "/v1/nope".into(), vec![], 404),
        (None, "GET", "/".into(), vec![], 404),
        (
            None,
            "GET",
            "/v1/datastores/customer_db/datasets/customers/x".into(),
            vec![],
            404,
        ),
        (
            Some("/v1/workspaces/{workspace}"),
            "GET",
            "/v1/workspaces/no%20way".into(),
            vec![],
            400,
        ),
        (
            Some("/v1/workspaces/{workspace}"),
            "GET",
            format!("/v1/workspaces/{long}"),
            vec![],
            400,
        ),
        (
            Some("/v1/datastores/{datastore}/datasets/{dataset}/json-schema"),
            "GET",
            "/v1/datastores/customer_db/datasets/1customers/json-schema".into(),
            vec![],
            400,
        ),
        (
            Some("/v1/datastores/{datastore}"),
            "GET",
            "/v1/datastores/customer_db%2Fdependants".into(),
            vec![],
            400,
        ),
        (None, "POST", "/v1/zones".into(), vec![], 405),
        (
            None,
            "DELETE",
            "/v1/datastores/customer_db".into(),
            vec![],
            405,
        ),
        (
            Some("/v1/zones"),
            "GET",
            "/v1/zones".into(),
            vec![("If-None-Match", format!("\"{etag}\""))],
            304,
        ),
        (
            Some("/v1/datastores/{datastore}/datasets/{dataset}/avro"),
            "GET",
            "/v1/datastores/customer_db/datasets/customers/avro".into(),
            vec![("If-None-Match", format!("\"x\", W/\"{etag}\""))],
            304,
        ),
        (
            Some("/v1/zones"),
            "GET",
            "/v1/zones".into(),
            vec![("If-None-Match", "\"sha256:0000\"".into())],
            200,
        ),
        (Some("/v1/zones"), "HEAD", "/v1/zones".into(), vec![], 200),
        (
            Some("/v1/datastores/{datastore}"),
            "GET",
            "/v1/datastores/CUSTOMER_DB".into(),
            vec![],
            200,
        ),
    ]
}

fn run_case(server: &Server, case: &Case) -> Reply {
    let (_, method, path, headers, status) = case;
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let reply = server.call(method, path, &headers);
    assert_eq!(
        reply.status, *status,
        "{method} {path} {headers:?}: {reply:?}"
    );
    reply
}

#[test]
fn errors_conditional_requests_and_case_insensitive_names() {
    let server = Server::showcase();
    let etag = server.get("/v1/zones").etag();
    let replies: Vec<(Case, Reply)> = error_cases(&etag)
        .into_iter()
        .map(|case| {
            let reply = run_case(&server, &case);
            (case, reply)
        })
        .collect();
    let reply = |path: &str, method: &str| -> &Reply {
        &replies
            .iter()
            .find(|((_, m, p, _, _), _)| p == path && *m == method)
            .unwrap()
            .1
    };

    let unknown_store = reply("/v1/datastores/custmer_db", "GET").json();
    assert_eq!(unknown_store["kind"], "datastore");
    assert_eq!(unknown_store["asked"], "custmer_db");
    assert_eq!(unknown_store["did_you_mean"], json!(["customer_db"]));
    assert!(
        unknown_store["error"]
            .as_str()
            .unwrap()
            .contains("did you mean customer_db?")
    );
    let unknown_dataset = reply("/v1/datastores/customer_db/datasets/custmers", "GET").json();
    assert_eq!(unknown_dataset["kind"], "dataset");
    assert_eq!(
        unknown_dataset["did_you_mean"],
        json!(["customer_db/customers"])
    );
    // A dataset of another store is not found in this one, and not suggested from the other store.
    let elsewhere = reply("/v1/datastores/customer_db/datasets/orders/avro", "GET").json();
    assert_eq!(elsewhere["kind"], "dataset");
    assert!(
        !elsewhere["did_you_mean"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d.as_str().unwrap().starts_with("orders_db")),
        "{elsewhere}"
    );
    let team = reply("/v1/zones/USA/teams/crn", "GET").json();
    assert_eq!(team["did_you_mean"], json!(["USA/crm"]));
    let ws = reply("/v1/workspaces/customer_306", "GET").json();
    assert_eq!(ws["did_you_mean"], json!(["customer_360"]));
    for path in [
        "/v1/nope",
        "/",
        "/v1/datastores/customer_db/datasets/customers/x",
    ] {
        let body = reply(path, "GET").json();
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .starts_with("no such endpoint"),
            "{path}: {body}"
        );
        assert_eq!(body["asked"], path);
        assert!(body.get("did_you_mean").is_none(), "{path}: {body}");
    }

    let bad = reply("/v1/workspaces/no%20way", "GET").json();
    assert!(
        bad["error"]
            .as_str()
            .unwrap()
            .contains("`no way` is not a valid name"),
        "{bad}"
    );
    let long = format!("/v1/workspaces/{}", "a".repeat(64));
    assert!(
        reply(&long, "GET").json()["error"]
            .as_str()
            .unwrap()
            .contains("at most 63 characters")
    );

    for (method, path) in [
        ("POST", "/v1/zones"),
        ("DELETE", "/v1/datastores/customer_db"),
    ] {
        let refused = reply(path, method);
        assert_eq!(
            refused.header("allow"),
            Some("GET, HEAD"),
            "{method} {path}"
        );
        assert_eq!(
            refused.json()["error"],
            format!("{method} is not served: the API is read-only (GET)")
        );
    }

    // If-None-Match naming the ETag (strong, or weak among others) gives 304 without a body; another ETag, 200.
    for ((_, method, path, headers, _), reply) in &replies {
        match reply.status {
            304 => {
                assert!(
                    reply.body.is_empty(),
                    "{path} {headers:?}: a 304 has no body"
                );
                assert_eq!(reply.etag(), etag, "{path}");
            }
            200 if *method == "HEAD" => {
                assert!(reply.body.is_empty(), "HEAD has no body");
                assert_eq!(reply.etag(), etag);
                let get = server.get(path);
                assert_eq!(
                    reply.header("content-length"),
                    Some(get.body.len().to_string().as_str()),
                    "HEAD: GET's length"
                );
            }
            200 => assert!(!reply.body.is_empty(), "{path} {headers:?}"),
            _ => {}
        }
    }

    // Names are case-insensitive, paths may end in a slash.
    assert_eq!(
        reply("/v1/datastores/CUSTOMER_DB", "GET").body,
        server.get("/v1/datastores/customer_db").body
    );
    assert_eq!(
        server.get("/v1/zones/usa/teams/CRM/").body,
        server.get("/v1/zones/USA/teams/crm").body
    );
}

/// A response schema of the document checked on `instance`: the schema with the document's components
/// beside it, so that `#/components/schemas/...` resolves. Every object schema that lists its properties is
/// made closed first (`additionalProperties: false`), so a field the document does not describe fails too.
fn validate(document: &Value, schema: &Value, instance: &Value, what: &str) {
    fn close(schema: &mut Value) {
        match schema {
            Value::Object(map) => {
                if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                    map.insert("additionalProperties".into(), Value::Bool(false));
                }
                for (key, value) in map.iter_mut() {
                    // `properties` maps names to schemas: its own keys are not keywords.
                    if key == "properties" {
                        for property in value
                            .as_object_mut()
                            .into_iter()
                            .flat_map(|m| m.values_mut())
                        {
                            close(property);
                        }
                    } else {
                        close(value);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(close),
            _ => {}
        }
    }
    let mut root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": document["components"],
        "allOf": [schema],
    });
    close(&mut root);
    let validator = jsonschema::validator_for(&root)
        .unwrap_or_else(|e| panic!("{what}: the schema does not compile: {e}"));
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("  {e} (at `{}`)", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what}: the response does not match /openapi.json:\n{}\n{}",
        errors.join("\n"),
        serde_json::to_string_pretty(instance).unwrap()
    );
}

/// `reply` checked against the document's response for `template` and its status (`None`: a path that is
/// no endpoint, whose body is an `Error`).
fn check_against(document: &Value, template: Option<&str>, method: &str, reply: &Reply) {
    let what = format!("{method} {template:?} {}", reply.status);
    let error_schema = json!({ "$ref": "#/components/schemas/Error" });
    let schema = match template {
        Some(template) if reply.status != 405 => {
            let operation = &document["paths"][template]["get"];
            assert!(operation.is_object(), "{what}: not in the document");
            let response = &operation["responses"][reply.status.to_string()];
            assert!(response.is_object(), "{what}: the status is not documented");
            let schema = &response["content"]["application/json"]["schema"];
            if schema.is_null() {
                assert!(reply.body.is_empty(), "{what}: a body the document has not");
                return;
            }
            schema.clone()
        }
        // 405 (any path) and paths that are no endpoint: undocumented, but still an `Error`.
        _ => {
            assert!(matches!(reply.status, 404 | 405), "{what}");
            error_schema
        }
    };
    assert_eq!(
        reply.header("content-type"),
        Some("application/json"),
        "{what}"
    );
    if method == "HEAD" {
        assert!(reply.body.is_empty(), "{what}: HEAD has no body");
        return;
    }
    validate(document, &schema, &reply.json(), &what);
}

/// A real name of the showcase for each path parameter of the document.
fn real_name(parameter: &str) -> &'static str {
    match parameter {
        "zone" => "USA",
        "team" => "crm",
        "datastore" => "customer_db",
        "dataset" => "customers",
        "workspace" => "customer_360",
        other => panic!("no real name for path parameter `{other}`: add one to the test"),
    }
}

#[test]
fn every_response_validates_against_the_openapi_document() {
    let server = Server::showcase();
    let document = server.get("/openapi.json").json();
    assert_eq!(document["openapi"], "3.1.0");
    let etag = server.get("/v1/zones").etag();
    let mut exercised: BTreeSet<String> = BTreeSet::new();
    for (_, template, path) in showcase_requests() {
        let reply = server.get(&path);
        assert_eq!(reply.status, 200, "{path}");
        check_against(&document, Some(template), "GET", &reply);
        exercised.insert(template.to_string());
    }
    for case in error_cases(&etag) {
        let reply = run_case(&server, &case);
        check_against(&document, case.0, case.1, &reply);
        if let Some(template) = case.0 {
            exercised.insert(template.to_string());
        }
    }

    // The document and the endpoints stay in step: every documented path was asked above, and answers 200
    // for real names.
    let paths = document["paths"].as_object().expect("paths");
    let documented: BTreeSet<String> = paths.keys().cloned().collect();
    assert_eq!(
        documented.difference(&exercised).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "documented paths the test does not ask"
    );
    assert_eq!(
        exercised.difference(&documented).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "paths asked that the document does not have"
    );
    for (template, item) in paths {
        let mut path = template.clone();
        for parameter in item["get"]["parameters"].as_array().expect("parameters") {
            assert_eq!(parameter["in"], "path", "{template}");
            let name = parameter["name"].as_str().unwrap();
            path = path.replace(&format!("{{{name}}}"), real_name(name));
        }
        assert!(!path.contains('{'), "{template}: an undeclared parameter");
        let reply = server.get(&path);
        assert_eq!(reply.status, 200, "{path}");
        check_against(&document, Some(template), "GET", &reply);
    }

    // The dataset JSON Schemas are schemas: a row of customers passes, one without a required column fails.
    let schema = server
        .get("/v1/datastores/customer_db/datasets/customers/json-schema")
        .json();
    let rows = jsonschema::validator_for(&schema).expect("the JSON Schema compiles");
    let row = json!({
        "id": 1, "first_name": "Ada", "last_name": "Lovelace", "email": null, "country_code": "GB",
        "loyalty_tier": 2, "marketing_opt_in": true, "created_at": "2024-01-01T00:00:00Z",
        "updated_at": "2024-01-01T00:00:00Z",
    });
    assert!(rows.is_valid(&row), "{row}");
    let mut without_id = row.clone();
    without_id.as_object_mut().unwrap().remove("id");
    assert!(!rows.is_valid(&without_id));
    let mut unknown = row;
    unknown["shoe_size"] = json!(44);
    assert!(!rows.is_valid(&unknown));
}

#[test]
fn sigterm_as_soon_as_it_listens_stops_it_cleanly() {
    // The signal handlers are in place before the "listening" line: a SIGTERM right after it is neither lost
    // nor fatal. (Each `Server` is stopped by its drop, which checks the exit code.)
    for _ in 0..25 {
        drop(Server::showcase());
    }
}

/// The base model with an invalid case of the corpus laid over it.
fn invalid_model(case: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for from in ["tests/data/base", &format!("tests/data/invalid/{case}")] {
        for entry in std::fs::read_dir(tests::root().join(from)).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    dir
}

#[test]
fn an_invalid_model_is_refused_before_listening() {
    let model = invalid_model("r12_sinks");
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut child = Command::new(tests::ds_binary())
        .arg("serve")
        .arg("-C")
        .arg(model.path())
        .args(["--listen", &addr.to_string()])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("ds serve kept running on an invalid model");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("error[DS1202]"), "{stderr}");
    assert!(stderr.contains("crm_bd"), "{stderr}");
    assert!(
        stderr.contains("the model has 4 error(s): ds serve starts only on a valid model"),
        "{stderr}"
    );
    assert!(!stderr.contains("listening"), "{stderr}");
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_tree(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

#[test]
fn rev_serves_the_model_committed_at_the_revision() {
    let repo = tempfile::tempdir().unwrap();
    let model = repo.path().join("model");
    copy_tree(&tests::root().join("examples/showcase"), &model);
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(["-c", "user.name=x", "-c", "user.email=y@ds.invalid"])
            .args(args)
            .current_dir(repo.path())
            .output()
            .expect("git runs");
        assert!(out.status.success(), "git {args:?}: {out:?}");
    };
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "showcase"]);
    let zone = model.join("zones/usa.ds.hcl");
    let committed = "US operational systems: customers and orders.";
    let text = std::fs::read_to_string(&zone).unwrap();
    assert!(text.contains(committed));
    std::fs::write(
        &zone,
        text.replace(committed, "Changed in the working tree."),
    )
    .unwrap();

    let at_head = Server::start(&model, &["--rev", "HEAD"]);
    let health = at_head.get("/healthz").json();
    assert_eq!(health["revision"], "HEAD");
    assert_eq!(health["status"], "ok");
    assert_eq!(health["datasets"], 11);
    assert_eq!(at_head.get("/v1/ecosystem").json()["revision"], "HEAD");
    let usa = at_head.get("/v1/zones/usa").json();
    assert_eq!(usa["documentation"]["text"], committed);

    // The working tree, served as it is, has the change and another hash.
    let working = Server::start(&model, &[]);
    assert_eq!(working.get("/healthz").json()["revision"], Value::Null);
    assert_eq!(
        working.get("/v1/zones/usa").json()["documentation"]["text"],
        "Changed in the working tree."
    );
    assert_ne!(
        working.get("/v1/zones").etag(),
        at_head.get("/v1/zones").etag()
    );
}
