//! A state of 100,000 resources (what a 10,000-dataset model was expected to compile to). Checks what this
//! crate controls: the bytes the layout adds to the caller's content (addresses, type and provider names,
//! attributes, dependencies) and, in release builds, the time to serialise, parse, read and write. Run
//! `cargo test -p state --release --test large -- --nocapture` to see the figures.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::json;
use state::{Backend, LocalBackend, ResourceState, State};

const DATASETS: usize = 10_000;
const MIB: usize = 1024 * 1024;

fn resource(
    kind: &str,
    name: String,
    attributes: serde_json::Value,
    deps: Vec<String>,
) -> ResourceState {
    ResourceState {
        address: format!("{kind}.{name}"),
        kind: kind.to_owned(),
        provider: kind
            .rsplit_once('_')
            .map_or(kind, |(provider, _)| provider)
            .to_owned(),
        schema_version: 1,
        attributes,
        dependencies: deps,
        secret_fingerprints: BTreeMap::new(),
    }
}

/// Ten resources per dataset, shaped like what the providers record: a staging and a merge table (three
/// columns each), a workspace view, a grant, a sink connector, a scheduler job, and four more small ones.
fn dataset(state: &mut State, i: usize) {
    let name = format!("crm_db__customers_{i:05}");
    let columns = json!([
        {"name": "id", "type": "bigint", "nullable": false},
        {"name": "email", "type": "text", "nullable": true},
        {"name": "updated_at", "type": "timestamptz", "nullable": false},
    ]);
    let schema = "postgres_schema.zero_live".to_owned();
    let staging = format!("zero_live.{name}__staging");
    let merge = format!("zero_live.{name}__merge");
    let table = |name: &str| json!({"schema": "zero_live", "name": name, "columns": columns, "primary_key": ["id"]});
    let resources = &mut state.resources;
    resources.push(resource(
        "postgres_table",
        staging.clone(),
        table(&staging),
        vec![schema.clone()],
    ));
    resources.push(resource(
        "postgres_table",
        merge.clone(),
        table(&merge),
        vec![schema.clone()],
    ));
    let view = format!("analytics.{name}");
    resources.push(resource(
        "postgres_view",
        view.clone(),
        json!({"schema": "analytics", "name": name, "definition_sha256": format!("{:064x}", i)}),
        vec![format!("postgres_table.{merge}")],
    ));
    resources.push(resource(
        "postgres_grant",
        format!("analytics_read.{name}"),
        json!({"role": "analytics_read", "on": view, "privileges": ["SELECT"]}),
        vec![format!("postgres_view.{view}")],
    ));
    resources.push(resource(
        "debezium_sink",
        format!("zero.{name}"),
        json!({"connector": format!("zero-{name}-sink"), "topics": format!("crm.public.customers_{i:05}"), "tasks": 1}),
        vec![format!("postgres_table.{staging}")],
    ));
    resources.push(resource(
        "scheduler_job",
        format!("merge.{name}"),
        json!({"schedule": "*/5 * * * *", "command": "merge", "target": merge}),
        vec![format!("postgres_table.{merge}")],
    ));
    for extra in ["a", "b", "c", "d"] {
        resources.push(resource(
            "s3_object",
            format!("archive.{name}_{extra}"),
            json!({"bucket": "zero-archive", "key": format!("{name}/{extra}")}),
            Vec::new(),
        ));
    }
}

fn big_state() -> State {
    let mut state = State::new();
    state.model.hash = Some(format!("sha256:{:064x}", 42));
    for i in 0..DATASETS {
        dataset(&mut state, i);
    }
    state.resources.sort_by(|a, b| a.address.cmp(&b.address));
    state
}

fn time<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let value = f();
    (value, start.elapsed())
}

#[test]
fn hundred_thousand_resources() {
    let (mut state, built) = time(big_state);
    assert_eq!(state.resources.len(), 10 * DATASETS);

    let (bytes, serialised) = time(|| state::to_bytes(&state));
    let (parsed, parsed_in) = time(|| state::parse(&bytes, "state.json".as_ref()).unwrap());
    assert_eq!(parsed, state);
    let attributes: usize = state
        .resources
        .iter()
        .map(|r| r.attributes.to_string().len())
        .sum();
    let addresses: usize = state.resources.iter().map(|r| r.address.len()).sum();
    let dependencies: usize = state
        .resources
        .iter()
        .flat_map(|r| &r.dependencies)
        .map(String::len)
        .sum();

    let dir = tempfile::tempdir().unwrap();
    let backend = LocalBackend::new(dir.path().join("state.json"));
    let ((), first_write) = time(|| backend.write(&mut state).unwrap());
    let (read, read_in) = time(|| backend.read().unwrap().unwrap());
    assert_eq!(read, state);
    let ((), unchanged_write) = time(|| backend.write(&mut state).unwrap());
    assert_eq!(state.serial, 1);
    state.remove(&state.resources[500].address.clone());
    let ((), second_write) = time(|| backend.write(&mut state).unwrap());
    assert_eq!(state.serial, 2);

    let size = bytes.len();
    let n = state.resources.len();
    let names: usize = state
        .resources
        .iter()
        .map(|r| r.kind.len() + r.provider.len())
        .sum();
    let layout = size - attributes - addresses - dependencies - names;
    eprintln!(
        "{n} resources ({} build): {:.2} MiB, {} bytes per resource: attributes {}, address {}, dependencies {}, \
         type and provider {}, layout {}",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        size as f64 / MIB as f64,
        size / n,
        attributes / n,
        addresses / n,
        dependencies / n,
        names / n,
        layout / n,
    );
    eprintln!(
        "to_bytes {serialised:?}, parse {parsed_in:?}; backend: first write {first_write:?}, read {read_in:?}, \
         unchanged write {unchanged_write:?}, write with backup {second_write:?} (building the state: {built:?})"
    );

    // The layout (keys, quotes, punctuation, indentation) stays under 100 bytes a resource: under 10 MiB of
    // the file at 100k resources; the rest is the caller's content.
    assert!(
        layout / n < 100,
        "{} bytes of layout per resource",
        layout / n
    );
    if !cfg!(debug_assertions) {
        // The figures are ~150-400 ms on a loaded 2-core VM; the bar is the product's "well under a second".
        let budget = Duration::from_secs(1);
        for (what, took) in [
            ("to_bytes", serialised),
            ("parse", parsed_in),
            ("read", read_in),
            ("write", second_write),
        ] {
            assert!(took < budget, "{what} took {took:?}");
        }
    }
}
