//! Compile: a validated model becomes a graph of desired resources.
//!
//! Pure: no network, clock or environment. Every resource has a stable address (`type.name`), its kind
//! (which says the provider), attributes (plain JSON, what the state records) and the addresses it depends
//! on. Physical names follow the product contract (§4): a schema per data platform named after it,
//! `<store>__<dataset>__{staging,merge,landing}` tables, `ws_<workspace>` schemas with
//! `<dsg>__<store>__<dataset>[__history]` views and a `ws_<workspace>_reader` role; identifiers over 63
//! bytes are cut with a hash suffix ([`providers::physical::identifier`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use petgraph::graph::{DiGraph, NodeIndex};
use providers::physical::identifier;
use providers::{ResourceKind, kind};
use serde_json::{Value, json};

use crate::model::*;
use crate::template::{Input, placeholders};
use crate::validate::{Index, Resolution, resolve_group};

/// The value of `ds_surf_batch_out` that marks the live version of a forensic row.
pub const LIVE_BATCH_OUT: i64 = 2_147_483_647;

/// A desired resource.
#[derive(Debug, Clone)]
pub struct Resource {
    /// `type.name`.
    pub address: String,
    /// The resource type.
    pub kind: &'static dyn ResourceKind,
    /// The attributes, as recorded in state.
    pub attributes: Value,
    /// Addresses this resource needs to exist first, sorted.
    pub dependencies: Vec<String>,
}

/// The desired resources and their dependencies. Edges run from a dependency to what depends on it.
pub struct Graph {
    /// The graph; node weights are resources.
    pub graph: DiGraph<Resource, ()>,
    /// Node of each address, in address order.
    pub nodes: BTreeMap<String, NodeIndex>,
}

impl Graph {
    /// A resource by address.
    pub fn get(&self, address: &str) -> Option<&Resource> {
        self.nodes.get(address).map(|&n| &self.graph[n])
    }

    /// Every resource, in address order.
    pub fn resources(&self) -> impl Iterator<Item = &Resource> {
        self.nodes.values().map(|&n| &self.graph[n])
    }

    /// The number of resources.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// A dependency cycle, as the addresses along it (the first repeated at the end), if there is one.
    pub fn cycle(&self) -> Option<Vec<String>> {
        if petgraph::algo::toposort(&self.graph, None).is_ok() {
            return None;
        }
        // Find one cycle with a depth-first search, deterministic in address order.
        let mut state: HashMap<NodeIndex, u8> = HashMap::new();
        let mut stack: Vec<NodeIndex> = Vec::new();
        for &start in self.nodes.values() {
            if let Some(cycle) = self.dfs_cycle(start, &mut state, &mut stack) {
                return Some(cycle);
            }
        }
        None
    }

    fn dfs_cycle(
        &self,
        node: NodeIndex,
        state: &mut HashMap<NodeIndex, u8>,
        stack: &mut Vec<NodeIndex>,
    ) -> Option<Vec<String>> {
        match state.get(&node) {
            Some(2) => return None,
            Some(1) => {
                let from = stack.iter().position(|&n| n == node).unwrap_or(0);
                let mut path: Vec<String> = stack[from..]
                    .iter()
                    .map(|&n| self.graph[n].address.clone())
                    .collect();
                path.push(self.graph[node].address.clone());
                return Some(path);
            }
            _ => {}
        }
        state.insert(node, 1);
        stack.push(node);
        let mut next: Vec<NodeIndex> = self.graph.neighbors(node).collect();
        next.sort_by(|a, b| self.graph[*a].address.cmp(&self.graph[*b].address));
        for n in next {
            if let Some(cycle) = self.dfs_cycle(n, state, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        state.insert(node, 2);
        None
    }
}

/// Why a model did not compile. Validation catches model problems first; these are engine invariants.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// Two resources with one address.
    #[error("internal error: two resources compile to address `{0}`")]
    DuplicateAddress(String),
    /// A dependency on an address nothing compiles to.
    #[error("internal error: `{from}` depends on `{to}`, which the model does not compile to")]
    UnknownDependency {
        /// The dependent.
        from: String,
        /// The missing dependency.
        to: String,
    },
}

struct Builder {
    resources: Vec<Resource>,
    /// Position of each address in `resources`.
    position: HashMap<String, usize>,
    errors: Vec<CompileError>,
}

impl Builder {
    fn add(
        &mut self,
        kind_name: &str,
        name: &str,
        attributes: Value,
        mut deps: Vec<String>,
    ) -> String {
        let kind = kind(kind_name).expect("compile only uses registered kinds");
        let address = format!("{kind_name}.{name}");
        deps.sort_unstable();
        deps.dedup();
        if self.position.contains_key(&address) {
            self.errors
                .push(CompileError::DuplicateAddress(address.clone()));
            return address;
        }
        self.position.insert(address.clone(), self.resources.len());
        self.resources.push(Resource {
            address: address.clone(),
            kind,
            attributes,
            dependencies: deps,
        });
        address
    }

    fn finish(mut self) -> Result<Graph, CompileError> {
        if let Some(err) = self.errors.pop() {
            return Err(err);
        }
        // Nodes in address order, so that iteration and node indices are deterministic.
        let mut order: Vec<usize> = (0..self.resources.len()).collect();
        order.sort_unstable_by(|&a, &b| self.resources[a].address.cmp(&self.resources[b].address));
        let edge_count = self.resources.iter().map(|r| r.dependencies.len()).sum();
        let mut graph = DiGraph::with_capacity(self.resources.len(), edge_count);
        let mut node_of = vec![NodeIndex::new(0); self.resources.len()];
        let mut resources: Vec<Option<Resource>> = self.resources.into_iter().map(Some).collect();
        for &i in &order {
            let resource = resources[i].take().expect("each resource is placed once");
            node_of[i] = graph.add_node(resource);
        }
        for &i in &order {
            let node = node_of[i];
            for d in 0..graph[node].dependencies.len() {
                let Some(&dep) = self.position.get(&graph[node].dependencies[d]) else {
                    return Err(CompileError::UnknownDependency {
                        from: graph[node].address.clone(),
                        to: graph[node].dependencies[d].clone(),
                    });
                };
                graph.add_edge(node_of[dep], node, ());
            }
        }
        let nodes = order
            .iter()
            .map(|&i| (graph[node_of[i]].address.clone(), node_of[i]))
            .collect();
        Ok(Graph { graph, nodes })
    }
}

fn lower(name: &str) -> String {
    name.to_ascii_lowercase()
}

fn trigger_json(trigger: Option<&Spanned<Trigger>>) -> Value {
    match trigger.map(|t| &t.value) {
        Some(Trigger::Interval(seconds)) => json!({ "interval_seconds": seconds }),
        Some(Trigger::Cron(cron)) => json!({ "cron": cron }),
        Some(Trigger::External) => json!({ "external": true }),
        None => json!({ "after_input_commit": true }),
    }
}

fn text(value: &Option<Spanned<String>>) -> Value {
    value
        .as_ref()
        .map_or(Value::Null, |v| Value::String(v.value.clone()))
}

fn merge_database(platform: &Platform) -> String {
    match &platform.merge_db {
        Some(db) => format!(
            "{}:{}/{}",
            db.host.as_ref().map_or("", |h| h.value.as_str()),
            db.port.as_ref().map_or(5432, |p| p.value),
            db.database.as_ref().map_or("", |d| d.value.as_str())
        ),
        None => String::new(),
    }
}

/// The name of the credential of a platform's merge database.
fn merge_credential(platform: &Platform) -> Value {
    platform
        .merge_db
        .as_ref()
        .map_or(Value::Null, |db| text(&db.credential))
}

/// How a connector config names a credential's user and password: references that the Kafka Connect
/// worker resolves with its config providers (`${env:SHOP_DB_PASSWORD}` from its environment, or
/// `${dir:/etc/ds/credentials/shop_db:password}` from the credentials directory), so that no secret passes
/// through `ds`, its plans or its state. See docs/kafka-connect.md.
fn secret_refs(platform: &Platform, credential: &str) -> (String, String) {
    match platform.credentials.as_ref().map(|c| &c.value) {
        Some(CredentialSource::Directory(path)) => {
            let dir = path.as_deref().unwrap_or("").trim_end_matches('/');
            (
                format!("${{dir:{dir}/{credential}:user}}"),
                format!("${{dir:{dir}/{credential}:password}}"),
            )
        }
        _ => {
            let name = credential.to_ascii_uppercase();
            (
                format!("${{env:{name}_USER}}"),
                format!("${{env:{name}_PASSWORD}}"),
            )
        }
    }
}

/// The attributes every connector resource has: where (`connect_url`, and `connect_credential` for basic
/// auth), which (`name`), the credential its config's secret references name (its fingerprint is
/// recorded), whether it is paused, and its config.
fn connector_json(platform: &Platform, name: String, credential: &str, config: Value) -> Value {
    let connect = platform.kafka_connect.as_ref();
    let mut attributes = json!({
        "connect_url": connect.map_or(Value::Null, |k| text(&k.url)),
        "connect_credential": connect.map_or(Value::Null, |k| text(&k.credential)),
        "name": name,
        "credential": credential,
        "paused": false,
        "config": config,
    });
    drop_nulls(&mut attributes);
    attributes
}

/// A regular expression matching exactly `text`.
fn regex_exact(text: &str) -> String {
    let mut out = String::from("^");
    for c in text.chars() {
        if "\\.^$|?*+()[]{}".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('$');
    out
}

/// A JDBC sink connector's config writing `topics` (topic → landing table, `schema.table`) into the merge
/// database: append-only rows, one per change event. Each topic is renamed to its table by a RegexRouter;
/// the Debezium events are unwrapped first (`ExtractNewRecordState`), adding the operation, the source LSN
/// and commit time, and a delete marker (`__op`, `__lsn`, `__source_ts_ms`, `__deleted`).
fn sink_config(platform: &Platform, schema: &str, topics: &BTreeMap<String, String>) -> Value {
    let credential = merge_credential(platform);
    let (user, password) = secret_refs(platform, credential.as_str().unwrap_or(""));
    let jdbc_url = platform.merge_db.as_ref().map_or(String::new(), |db| {
        format!(
            "jdbc:postgresql://{}:{}/{}",
            db.host.as_ref().map_or("", |h| h.value.as_str()),
            db.port.as_ref().map_or(5432, |p| p.value),
            db.database.as_ref().map_or("", |d| d.value.as_str())
        )
    });
    let mut config = serde_json::Map::new();
    let mut put = |key: &str, value: String| {
        config.insert(key.to_string(), Value::String(value));
    };
    put(
        "connector.class",
        "io.debezium.connector.jdbc.JdbcSinkConnector".into(),
    );
    put("tasks.max", "1".into());
    put("connection.url", jdbc_url);
    put("connection.username", user);
    put("connection.password", password);
    put(
        "topics",
        topics.keys().cloned().collect::<Vec<_>>().join(","),
    );
    put("insert.mode", "insert".into());
    put("primary.key.mode", "none".into());
    put("delete.enabled", "false".into());
    put("schema.evolution", "none".into());
    put("collection.name.format", format!("{schema}.${{topic}}"));
    let mut transforms = vec!["unwrap".to_string()];
    put(
        "transforms.unwrap.type",
        "io.debezium.transforms.ExtractNewRecordState".into(),
    );
    put("transforms.unwrap.add.fields", "op,lsn,source.ts_ms".into());
    put(
        "transforms.unwrap.delete.tombstone.handling.mode",
        "rewrite".into(),
    );
    for (topic, table) in topics {
        // Named after its table, so that adding a dataset adds a transform and changes no other.
        let name = table.rsplit('.').next().unwrap_or(table);
        let route = format!("route_{name}");
        put(
            &format!("transforms.{route}.type"),
            "org.apache.kafka.connect.transforms.RegexRouter".into(),
        );
        put(&format!("transforms.{route}.regex"), regex_exact(topic));
        put(&format!("transforms.{route}.replacement"), name.to_string());
        transforms.push(route);
    }
    put("transforms", transforms.join(","));
    Value::Object(config)
}

/// A column as the state records it: `<name> <type>`, with ` not null` when it is not nullable.
fn column_text(column: &Column, nullable: bool) -> String {
    let ty = column
        .ty
        .as_ref()
        .map_or(String::new(), |t| t.value.to_string());
    column_def(&lower(&column.name.value), &ty, nullable)
}

fn column_def(name: &str, ty: &str, nullable: bool) -> String {
    if nullable {
        format!("{name} {ty}")
    } else {
        format!("{name} {ty} not null")
    }
}

/// The columns of a table as one string, `"id integer not null, email varchar(200)"`: compact and readable
/// (a large model's state holds tens of thousands of tables; see
/// `providers::postgres::Column::parse_list`).
fn columns_value(columns: impl Iterator<Item = String>) -> Value {
    Value::String(columns.collect::<Vec<_>>().join(", "))
}

/// Attributes of a table. Its schema and name are in its address, its database is its schema's; the
/// system columns of its role are the provider's (`providers::postgres::system_columns`), so the state
/// records only what the model decides.
fn table_json(role: &str, columns: Value, key: Vec<String>) -> Value {
    let mut map = serde_json::Map::new();
    map.insert("role".into(), Value::String(role.to_string()));
    map.insert("columns".into(), columns);
    if !key.is_empty() {
        map.insert(
            "primary_key".into(),
            Value::Array(key.into_iter().map(Value::String).collect()),
        );
    }
    Value::Object(map)
}

/// Leaves absent what is not set, rather than recording `null`s.
fn drop_nulls(value: &mut Value) {
    if let Value::Object(map) = value {
        map.retain(|_, v| !v.is_null());
    }
}

/// Where one dataset group's views come from.
struct Served<'m> {
    platform: &'m Platform,
    data_platform: &'m DataPlatform,
}

/// Compiles a model that validated without errors.
pub fn compile(model: &Model) -> Result<Graph, CompileError> {
    let index = Index::build(model);
    let mut b = Builder {
        resources: Vec::new(),
        position: HashMap::new(),
        errors: Vec::new(),
    };

    // Which data platform serves each group, and so which (data platform, store) pairs are ingested.
    let mut served: HashMap<(String, String), Served<'_>> = HashMap::new();
    let mut ingested: BTreeMap<(String, String), (&Platform, &DataPlatform)> = BTreeMap::new();
    for team in &model.teams {
        for ws in &team.workspaces {
            for group in &ws.groups {
                let Resolution::Resolved(dp) = resolve_group(model, &index, ws, group) else {
                    continue;
                };
                served.insert(
                    (ws.name.key(), group.name.key()),
                    Served {
                        platform: dp.platform,
                        data_platform: dp.data_platform,
                    },
                );
                for sink in &group.sinks {
                    ingested
                        .entry((dp.data_platform.name.key(), sink.store.key()))
                        .or_insert((dp.platform, dp.data_platform));
                }
            }
        }
    }

    // Data platforms: schema and control tables.
    for platform in &model.platforms {
        let database = merge_database(platform);
        let credential = merge_credential(platform);
        for dp in &platform.data_platforms {
            let schema = lower(&dp.name.value);
            let schema_address = b.add(
                "postgres_schema",
                &schema,
                json!({ "database": database, "name": schema, "platform": platform.name.value, "credential": credential }),
                vec![],
            );
            control_tables(&mut b, &schema, &schema_address);
        }
        if let Some(store) = &platform.object_store {
            for bucket in &store.buckets {
                let tags: BTreeMap<&str, &str> = bucket
                    .tags
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let mut attributes = json!({
                    "endpoint": text(&store.endpoint),
                    "region": store.region.as_ref().map_or("us-east-1", |r| r.value.as_str()),
                    "credential": text(&store.credential),
                    "name": bucket.name.value,
                    "versioning": bucket.versioning,
                    "expire_after_days": bucket.expire_after_days,
                    "tags": tags,
                });
                // Parsed, so that it compares as JSON rather than as text (validation checked it parses).
                if let Some(policy) = bucket
                    .policy
                    .as_ref()
                    .and_then(|p| serde_json::from_str::<Value>(&p.value).ok())
                {
                    attributes["policy"] = policy;
                }
                b.add("s3_bucket", &bucket.name.value, attributes, vec![]);
            }
        }
    }

    // Ingestion: tables per (data platform, store, dataset), the stream's job, and cdc/kafka plumbing.
    let mut cdc_sources: BTreeSet<String> = BTreeSet::new();
    // Per transformer output store, the stream of each data platform that ingests it.
    let mut output_streams: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for ((_, store_key), (platform, dp)) in &ingested {
        let Some(store) = index.store(store_key) else {
            continue;
        };
        let schema = lower(&dp.name.value);
        let schema_address = format!("postgres_schema.{schema}");
        let store_name = lower(&store.store.name.value);
        let capture = store.store.captures.first();
        let kind = capture.and_then(|c| c.kind);
        let lands = matches!(kind, Some(CaptureKind::Cdc | CaptureKind::Kafka));
        let milestoning = dp
            .milestoning
            .as_ref()
            .map_or(Milestoning::LiveOnly, |m| m.value);
        let mut landing_tables = Vec::new();
        let mut stream_tables = vec![
            format!("postgres_table.{schema}.ds_batch_counter"),
            format!("postgres_table.{schema}.ds_batch_metrics"),
            format!("postgres_table.{schema}.ds_jobs"),
        ];
        let mut per_dataset_tables: Vec<(String, Vec<String>)> = Vec::new();
        // What the stream's job needs to know of each dataset: where it comes from, its columns and key,
        // and its tables here.
        let mut specs: BTreeMap<String, Value> = BTreeMap::new();
        // The source tables' schema: Postgres's `public` by default; on MySQL a schema is a database.
        let source_schema = capture
            .and_then(|c| c.source.as_ref())
            .map_or("public", |s| match (&s.schema, s.engine) {
                (Some(schema), _) => schema.value.as_str(),
                (None, SourceEngine::Postgres) => "public",
                (None, SourceEngine::Mysql) => s.database.as_ref().map_or("", |d| d.value.as_str()),
            });
        for dataset in &store.store.datasets {
            let Some(table) = &dataset.table else {
                continue;
            };
            let ds_name = lower(&dataset.name.value);
            let columns = columns_value(table.columns.iter().map(|c| column_text(c, c.nullable)));
            let key: Vec<String> = dataset.primary_key().iter().map(|k| lower(k)).collect();
            let mut spec = json!({
                "columns": columns.clone(),
                "key": key.clone(),
                "staging": identifier(&format!("{store_name}__{ds_name}__staging")),
                "merge": identifier(&format!("{store_name}__{ds_name}__merge")),
            });
            if let Some(capture) = capture {
                spec["source"] = json!(format!(
                    "{source_schema}.{}",
                    source_table(capture, dataset)
                ));
            }
            if lands {
                spec["landing"] = json!(identifier(&format!("{store_name}__{ds_name}__landing")));
            }
            specs.insert(ds_name.clone(), spec);
            // The job depends on the merge table (and the landing table), the merge table on the staging
            // table: the stream's tables exist before its job, without the job listing every one.
            let mut own = Vec::new();
            let staging = identifier(&format!("{store_name}__{ds_name}__staging"));
            let staging_address = b.add(
                "postgres_table",
                &format!("{schema}.{staging}"),
                // Staging holds every batch's rows, several per key: it has no primary key.
                table_json("staging", columns.clone(), Vec::new()),
                vec![schema_address.clone()],
            );
            let merge = identifier(&format!("{store_name}__{ds_name}__merge"));
            let merge_role = match milestoning {
                Milestoning::Forensic => "merge_forensic",
                Milestoning::LiveOnly => "merge_live",
            };
            own.push(b.add(
                "postgres_table",
                &format!("{schema}.{merge}"),
                table_json(merge_role, columns, key),
                // Not the schema: the staging table already depends on it (the state keeps dependencies
                // transitively reduced where that is free).
                vec![staging_address],
            ));
            if lands {
                let name = identifier(&format!("{store_name}__{ds_name}__landing"));
                let cols = columns_value(table.columns.iter().map(|c| column_text(c, true)));
                let address = b.add(
                    "postgres_table",
                    &format!("{schema}.{name}"),
                    table_json("landing", cols, Vec::new()),
                    vec![schema_address.clone()],
                );
                landing_tables.push(address.clone());
                own.push(address);
            }
            per_dataset_tables.push((ds_name, own));
        }
        let source = capture.and_then(|c| c.source.as_ref());
        // A kafka store's topics, which the scheduler reads itself (see providers' scheduler::kafka): per
        // dataset its topic, and the table that keeps the offsets read.
        let kafka = match (capture, kind) {
            (Some(capture), Some(CaptureKind::Kafka)) => {
                let topics: serde_json::Map<String, Value> = store
                    .store
                    .datasets
                    .iter()
                    .map(|d| {
                        let topic = capture
                            .topic_for_dataset
                            .iter()
                            .find(|(k, _)| k.value.eq_ignore_ascii_case(&d.name.value))
                            .map_or_else(
                                || format!("{store_name}.{}", lower(&d.name.value)),
                                |(_, t)| t.value.clone(),
                            );
                        (lower(&d.name.value), Value::String(topic))
                    })
                    .collect();
                let offsets = kafka_offsets_table(&mut b, &schema, &schema_address);
                stream_tables.push(offsets);
                json!({
                    "bootstrap_servers": platform
                        .kafka_connect
                        .as_ref()
                        .and_then(|k| k.bootstrap_servers.as_ref())
                        .map_or("", |b| b.value.as_str()),
                    "topics": topics,
                })
            }
            _ => Value::Null,
        };
        // An archiving data platform: where its committed batches go (the platform's object store).
        let archive = match (&dp.archive_bucket, &platform.object_store) {
            (Some(bucket), Some(store)) => json!({
                "endpoint": text(&store.endpoint),
                "region": store.region.as_ref().map_or("us-east-1", |r| r.value.as_str()),
                "credential": text(&store.credential),
                "bucket": bucket.value,
            }),
            _ => Value::Null,
        };
        // Its jobs write to the bucket: it is made first (and `--target scheduler_job` brings it along).
        if let Some(bucket) = archive.get("bucket").and_then(Value::as_str) {
            stream_tables.push(format!("s3_bucket.{bucket}"));
        }
        let job_attributes = |datasets: Vec<&str>| {
            // The stream's key in the control tables (as the history views join them): the store, or
            // store and dataset for a store captured one dataset at a time.
            let stream = match datasets.as_slice() {
                [one] if capture.is_some_and(|c| c.single_dataset) => {
                    format!("{store_name}__{one}")
                }
                _ => store_name.clone(),
            };
            let tables: serde_json::Map<String, Value> = datasets
                .iter()
                .filter_map(|d| Some((d.to_string(), specs.get(*d)?.clone())))
                .collect();
            let mut attributes = json!({
                "kind": "ingest",
                "data_platform": schema,
                "stream": stream,
                "milestoning": if milestoning == Milestoning::Forensic { "forensic" } else { "live" },
                "merge_database": merge_database(platform),
                "merge_credential": merge_credential(platform),
                "staging_batches_to_keep": dp.staging_batches_to_keep.as_ref().map_or(5, |k| k.value),
                "tables": tables,
                "store": store_name,
                "capture": kind.map_or("transformer", |k| k.as_str()),
                "datasets": datasets,
                "trigger": trigger_json(capture.and_then(|c| c.trigger.as_ref())),
                "credential": capture.map_or(Value::Null, |c| text(&c.credential)),
                "source": source.map_or(Value::Null, |s| json!({
                    "engine": if s.engine == SourceEngine::Postgres { "postgres" } else { "mysql" },
                    "host": text(&s.host),
                    "port": s.port.as_ref().map_or(if s.engine == SourceEngine::Postgres { 5432 } else { 3306 }, |p| p.value),
                    "database": text(&s.database),
                    "schema": source_schema,
                })),
                "watermark": capture.map_or(Value::Null, |c| text(&c.watermark)),
                "kafka": kafka.clone(),
                "archive": archive.clone(),
            });
            drop_nulls(&mut attributes);
            attributes
        };
        if store.transformer.is_some() {
            // A transformer's output: its job (see `workspace`) runs the SQL and feeds this stream.
            let datasets: Vec<&str> = per_dataset_tables.iter().map(|(d, _)| d.as_str()).collect();
            output_streams
                .entry(store_name.clone())
                .or_default()
                .push(job_attributes(datasets));
        } else {
            if capture.is_some_and(|c| c.single_dataset) {
                for (ds_name, tables) in &per_dataset_tables {
                    let name = format!("{schema}.{store_name}__{ds_name}");
                    let attrs = job_attributes(vec![ds_name.as_str()]);
                    let mut deps = stream_tables.clone();
                    deps.extend(tables.iter().cloned());
                    b.add("scheduler_job", &name, attrs, deps);
                }
            } else {
                let name = format!("{schema}.{store_name}");
                let datasets: Vec<&str> =
                    per_dataset_tables.iter().map(|(d, _)| d.as_str()).collect();
                let attrs = job_attributes(datasets);
                let mut deps = std::mem::take(&mut stream_tables);
                deps.extend(
                    per_dataset_tables
                        .iter()
                        .flat_map(|(_, t)| t.iter().cloned()),
                );
                b.add("scheduler_job", &name, attrs, deps);
            }
        }
        // Change capture plumbing: a cdc store's Debezium source and its JDBC sink per data platform (a
        // kafka store's topics are read by the scheduler; see `kafka` above).
        let (Some(capture), Some(CaptureKind::Cdc)) = (capture, kind) else {
            continue;
        };
        let (source_address, topic_prefix) =
            cdc_source(&mut b, store.store, capture, platform, &mut cdc_sources);
        let topics: BTreeMap<String, String> = store
            .store
            .datasets
            .iter()
            .map(|d| {
                let table = source_table(capture, d);
                let schema_name = source
                    .and_then(|s| s.schema.as_ref())
                    .map_or("public", |v| v.value.as_str());
                (
                    format!("{topic_prefix}.{schema_name}.{table}"),
                    landing_table(&schema, &store_name, d),
                )
            })
            .collect();
        let mut deps = landing_tables.clone();
        deps.push(source_address);
        b.add(
            "debezium_sink",
            &format!("{schema}.{store_name}"),
            connector_json(
                platform,
                format!("ds-{schema}-{store_name}-sink"),
                merge_credential(platform).as_str().unwrap_or(""),
                sink_config(platform, &schema, &topics),
            ),
            deps,
        );
    }

    // Workspaces: a schema, a read role, views over merge tables and grants on them.
    for team in &model.teams {
        for ws in &team.workspaces {
            workspace(&mut b, &index, ws, &served, &ingested, &output_streams);
        }
    }
    b.finish()
}

/// `<schema>.ds_kafka_offsets`, where the scheduler keeps per stream, topic and partition the next offset to
/// read (written in the transaction that lands the records before it); added with a data platform's first
/// kafka store. Its address.
fn kafka_offsets_table(b: &mut Builder, schema: &str, schema_address: &str) -> String {
    let columns = [
        "stream varchar(255) not null",
        "topic varchar(255) not null",
        "partition integer not null",
        "next_offset bigint not null",
    ];
    let address = format!("postgres_table.{schema}.ds_kafka_offsets");
    if b.position.contains_key(&address) {
        return address;
    }
    b.add(
        "postgres_table",
        &format!("{schema}.ds_kafka_offsets"),
        table_json(
            "control",
            columns_value(columns.iter().map(|c| c.to_string())),
            vec!["stream".into(), "topic".into(), "partition".into()],
        ),
        vec![schema_address.to_string()],
    )
}

fn control_tables(b: &mut Builder, schema: &str, schema_address: &str) {
    let counter = [
        "stream varchar(255) not null",
        "current_batch integer not null",
    ];
    b.add(
        "postgres_table",
        &format!("{schema}.ds_batch_counter"),
        table_json(
            "control",
            columns_value(counter.iter().map(|c| c.to_string())),
            vec!["stream".into()],
        ),
        vec![schema_address.to_string()],
    );
    let metrics = [
        "stream varchar(255) not null",
        "batch_id integer not null",
        "state varchar(32) not null",
        "started_at timestamptz not null",
        "ingested_at timestamptz",
        "committed_at timestamptz",
        "rows_inserted bigint",
        "rows_updated bigint",
        "rows_deleted bigint",
        "error text",
        // sql_watermark: the highest watermark value this batch read up to (as text).
        "high_watermark text",
        // Data platforms with an `archive_bucket`: when the batch's staged rows reached the bucket.
        "archived_at timestamptz",
    ];
    b.add(
        "postgres_table",
        &format!("{schema}.ds_batch_metrics"),
        table_json(
            "control",
            columns_value(metrics.iter().map(|c| c.to_string())),
            vec!["stream".into(), "batch_id".into()],
        ),
        vec![schema_address.to_string()],
    );
    // The scheduler's jobs: one row per `scheduler_job`, with its config (the job's attributes) and the
    // scheduler's bookkeeping (when it is due next, who holds it, how its last run went).
    let jobs = [
        "job varchar(255) not null",
        "config text not null",
        "next_run_at timestamptz",
        "lease_owner varchar(255)",
        "lease_until timestamptz",
        "last_started_at timestamptz",
        "last_finished_at timestamptz",
        "last_status varchar(32)",
        "last_error text",
    ];
    b.add(
        "postgres_table",
        &format!("{schema}.ds_jobs"),
        table_json(
            "control",
            columns_value(jobs.iter().map(|c| c.to_string())),
            vec!["job".into()],
        ),
        vec![schema_address.to_string()],
    );
}

/// A dataset's landing table, `schema.<store>__<dataset>__landing`.
fn landing_table(schema: &str, store_name: &str, dataset: &Dataset) -> String {
    format!(
        "{schema}.{}",
        identifier(&format!(
            "{store_name}__{}__landing",
            lower(&dataset.name.value)
        ))
    )
}

fn source_table(capture: &Capture, dataset: &Dataset) -> String {
    capture
        .table_for_dataset
        .iter()
        .find(|(k, _)| k.value.eq_ignore_ascii_case(&dataset.name.value))
        .map_or_else(|| lower(&dataset.name.value), |(_, t)| t.value.clone())
}

/// The publication, slot and source connector of a cdc store (once per store, whichever data platform
/// ingests it); returns the source connector's address and its topic prefix.
///
/// The connector streams the store's tables through the managed publication and slot (Debezium creates
/// neither), sends heartbeats, and reads signals from a signal table in the source schema, which the
/// publication creates and publishes: `ds apply` writes an incremental-snapshot signal there when a dataset
/// is added.
fn cdc_source(
    b: &mut Builder,
    store: &Datastore,
    capture: &Capture,
    platform: &Platform,
    done: &mut BTreeSet<String>,
) -> (String, String) {
    let store_name = lower(&store.name.value);
    let address = format!("debezium_source.{store_name}");
    let topic_prefix = format!("ds.{}.{store_name}", lower(&platform.name.value));
    if !done.insert(store_name.clone()) {
        return (address, topic_prefix);
    }
    let source = capture.source.as_ref();
    let host = source.map_or(Value::Null, |s| text(&s.host));
    let port = source
        .and_then(|s| s.port.as_ref())
        .map_or(5432, |p| p.value);
    let dbname = source.map_or(Value::Null, |s| text(&s.database));
    let schema = source
        .and_then(|s| s.schema.as_ref())
        .map_or("public", |v| v.value.as_str());
    let database = format!(
        "{}:{port}/{}",
        host.as_str().unwrap_or(""),
        dbname.as_str().unwrap_or("")
    );
    let tables: Vec<String> = store
        .datasets
        .iter()
        .map(|d| format!("{schema}.{}", source_table(capture, d)))
        .collect();
    let object = identifier(&format!("ds_{store_name}"));
    let signal_table = format!(
        "{schema}.{}",
        identifier(&format!("ds_{store_name}_signal"))
    );
    let credential = capture.credential.as_ref().map_or("", |c| c.value.as_str());
    let publication = b.add(
        "debezium_publication",
        &store_name,
        json!({ "database": database, "name": object, "tables": tables,
                "signal_table": signal_table, "credential": credential }),
        vec![],
    );
    let slot = b.add(
        "debezium_slot",
        &store_name,
        json!({ "database": database, "name": object, "plugin": "pgoutput", "credential": credential }),
        vec![publication],
    );
    let (user, password) = secret_refs(platform, credential);
    let mut attributes = connector_json(
        platform,
        format!("ds-{store_name}-source"),
        credential,
        json!({
            "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
            "tasks.max": "1",
            "plugin.name": "pgoutput",
            "publication.name": object,
            "publication.autocreate.mode": "disabled",
            "slot.name": object,
            "database.hostname": host,
            "database.port": port.to_string(),
            "database.dbname": dbname,
            "database.user": user,
            "database.password": password,
            "topic.prefix": topic_prefix,
            "table.include.list": tables.join(","),
            "snapshot.mode": "initial",
            "heartbeat.interval.ms": "10000",
            // A write to the source database with each heartbeat: without one, a quiet database on a busy
            // server never lets the slot advance, and it pins ever more WAL.
            "heartbeat.action.query": format!(
                "INSERT INTO {signal_table} (id, type, data) VALUES ('ds-heartbeat', 'heartbeat', now()::text) \
                 ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data"
            ),
            "signal.enabled.channels": "source",
            // Postgres names it `<schema>.<table>` (no database).
            "signal.data.collection": signal_table,
        }),
    );
    attributes["database"] = json!(database);
    attributes["signal_table"] = json!(signal_table);
    (
        b.add("debezium_source", &store_name, attributes, vec![slot]),
        topic_prefix,
    )
}

fn workspace(
    b: &mut Builder,
    index: &Index<'_>,
    ws: &Workspace,
    served: &HashMap<(String, String), Served<'_>>,
    ingested: &BTreeMap<(String, String), (&Platform, &DataPlatform)>,
    output_streams: &BTreeMap<String, Vec<Value>>,
) {
    let groups: Vec<(&DatasetGroup, &Served<'_>)> = ws
        .groups
        .iter()
        .filter_map(|g| served.get(&(ws.name.key(), g.name.key())).map(|s| (g, s)))
        .collect();
    let Some((_, first)) = groups.first() else {
        return;
    };
    let database = merge_database(first.platform);
    let ws_schema = identifier(&format!("ws_{}", lower(&ws.name.value)));
    let schema_address = b.add(
        "postgres_schema",
        &ws_schema,
        json!({ "database": database, "name": ws_schema, "platform": first.platform.name.value, "credential": merge_credential(first.platform) }),
        vec![],
    );
    let role = identifier(&format!("ws_{}_reader", lower(&ws.name.value)));
    let role_address = b.add(
        "postgres_role",
        &role,
        json!({ "database": database, "name": role, "login": false, "credential": merge_credential(first.platform) }),
        vec![],
    );
    b.add(
        "postgres_grant",
        &format!("{role}.{ws_schema}"),
        json!({ "privileges": ["USAGE"] }),
        vec![role_address.clone(), schema_address.clone()],
    );
    let mut views: BTreeMap<(String, String, String), String> = BTreeMap::new();
    // Per view, the stream that feeds it: its data platform's schema and the stream's name.
    let mut feeds: BTreeMap<(String, String, String), (String, String)> = BTreeMap::new();
    for (group, serve) in &groups {
        let dp_schema = lower(&serve.data_platform.name.value);
        let forensic = serve
            .data_platform
            .milestoning
            .as_ref()
            .is_some_and(|m| m.value == Milestoning::Forensic);
        for sink in &group.sinks {
            let Some(store) = index.store(&sink.store.value) else {
                continue;
            };
            let Some(dataset) = store.dataset(&sink.dataset.value) else {
                continue;
            };
            let Some(table) = &dataset.table else {
                continue;
            };
            if !ingested.contains_key(&(serve.data_platform.name.key(), sink.store.key())) {
                continue;
            }
            let store_name = lower(&store.store.name.value);
            let ds_name = lower(&dataset.name.value);
            let merge = identifier(&format!("{store_name}__{ds_name}__merge"));
            let merge_address = format!("postgres_table.{dp_schema}.{merge}");
            // Names are validated identifiers (lowercase, not reserved): no quoting needed.
            let cols: Vec<String> = table.columns.iter().map(|c| lower(&c.name.value)).collect();
            let group_name = lower(&group.name.value);
            let base = format!("{group_name}__{store_name}__{ds_name}");
            let view = identifier(&base);
            let live_filter = if forensic {
                format!(" WHERE ds_surf_batch_out = {LIVE_BATCH_OUT}")
            } else {
                String::new()
            };
            let definition = format!(
                "SELECT {} FROM {dp_schema}.{merge}{live_filter}",
                cols.join(", ")
            );
            // A view depends on every table it reads: the history view reads the batch metrics too.
            let add_view = |name: &str, definition: String, reads: &[String], b: &mut Builder| {
                let mut deps = vec![schema_address.clone()];
                deps.extend(reads.iter().cloned());
                let address = b.add(
                    "postgres_view",
                    &format!("{ws_schema}.{name}"),
                    json!({ "definition": definition }),
                    deps,
                );
                b.add(
                    "postgres_grant",
                    &format!("{role}.{ws_schema}.{name}"),
                    json!({ "privileges": ["SELECT"] }),
                    vec![role_address.clone(), address],
                );
            };
            add_view(&view, definition, std::slice::from_ref(&merge_address), b);
            views.insert(
                (group_name.clone(), store_name.clone(), ds_name.clone()),
                format!("{ws_schema}.{view}"),
            );
            // The stream's key in the control tables: the store, or store and dataset for a store
            // captured one dataset at a time.
            let single = store
                .store
                .captures
                .first()
                .is_some_and(|c| c.single_dataset);
            let stream = if single {
                format!("{store_name}__{ds_name}")
            } else {
                store_name.clone()
            };
            feeds.insert(
                (group_name.clone(), store_name.clone(), ds_name.clone()),
                (dp_schema.clone(), stream.clone()),
            );
            if forensic {
                let history = identifier(&format!("{base}__history"));
                // A version holds for batches `batch_in ..= batch_out`: from the commit of its first batch
                // until the commit of the batch that replaced it (`batch_out + 1`, written so that the live
                // version's 2147483647 does not overflow).
                let definition = format!(
                    "SELECT {}, m.ds_surf_batch_in, m.ds_surf_batch_out, bi.committed_at AS ds_valid_from, \
                     CASE WHEN m.ds_surf_batch_out = {LIVE_BATCH_OUT} THEN NULL ELSE bo.committed_at END AS ds_valid_to \
                     FROM {dp_schema}.{merge} AS m \
                     LEFT JOIN {dp_schema}.ds_batch_metrics AS bi ON bi.stream = '{stream}' AND bi.batch_id = m.ds_surf_batch_in \
                     LEFT JOIN {dp_schema}.ds_batch_metrics AS bo ON bo.stream = '{stream}' AND bo.batch_id - 1 = m.ds_surf_batch_out",
                    cols.iter()
                        .map(|c| format!("m.{c}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                let metrics = format!("postgres_table.{dp_schema}.ds_batch_metrics");
                add_view(&history, definition, &[merge_address.clone(), metrics], b);
            }
        }
    }
    // The transformer: a job that runs its SQL over the views and ingests the result into its output store.
    for transformer in &ws.transformers {
        let Some(sql) = &transformer.sql else {
            continue;
        };
        let mut compiled = sql.value.clone();
        let mut deps: Vec<String> = Vec::new();
        // The streams whose commits make the transformer due (without a trigger of its own).
        let mut inputs: BTreeSet<(String, String)> = BTreeSet::new();
        let found = placeholders(&sql.value);
        for placeholder in found.iter().rev() {
            let Ok(Input {
                group,
                store,
                dataset,
            }) = &placeholder.input
            else {
                continue;
            };
            let key = (lower(group), lower(store), lower(dataset));
            if let Some(view) = views.get(&key) {
                compiled.replace_range(placeholder.range.clone(), view);
                let view_name = view.rsplit('.').next().unwrap_or("");
                deps.push(format!("postgres_view.{ws_schema}.{view_name}"));
            }
            if let Some(feed) = feeds.get(&key) {
                inputs.insert(feed.clone());
            }
        }
        let dp_schema = lower(&first.data_platform.name.value);
        let outputs: Vec<String> = transformer
            .outputs
            .iter()
            .map(|o| lower(&o.name.value))
            .collect();
        // The output store's tables in every data platform that ingests it.
        for ((_, store_key), (_, dp)) in ingested {
            if !outputs.iter().any(|o| o == store_key) {
                continue;
            }
            let Some(store) = index.store(store_key) else {
                continue;
            };
            for dataset in &store.store.datasets {
                // The merge table depends on the staging table: one edge covers both.
                deps.push(format!(
                    "postgres_table.{}.{}",
                    lower(&dp.name.value),
                    identifier(&format!(
                        "{store_key}__{}__merge",
                        lower(&dataset.name.value)
                    ))
                ));
            }
        }
        deps.push(format!("postgres_table.{dp_schema}.ds_jobs"));
        let name = format!("{dp_schema}.transformer__{}", lower(&ws.name.value));
        b.add(
            "scheduler_job",
            &name,
            json!({
                "kind": "transform",
                "data_platform": dp_schema,
                "workspace": lower(&ws.name.value),
                "transformer": lower(&transformer.name.value),
                "outputs": outputs,
                "trigger": trigger_json(transformer.trigger.as_ref()),
                "inputs": inputs
                    .iter()
                    .map(|(schema, stream)| json!({ "data_platform": schema, "stream": stream }))
                    .collect::<Vec<_>>(),
                "sql": compiled,
                // The output store's stream in each data platform that ingests it, as an ingestion job
                // would describe it: the SQL's result is its snapshot.
                "streams": outputs
                    .iter()
                    .flat_map(|o| output_streams.get(o).cloned().unwrap_or_default())
                    .collect::<Vec<_>>(),
            }),
            deps,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(address: &str, deps: &[&str]) -> Resource {
        Resource {
            address: address.into(),
            kind: kind("postgres_view").unwrap(),
            attributes: Value::Null,
            dependencies: deps.iter().map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn a_cycle_is_reported_with_the_path_that_closes_it() {
        let mut b = Builder {
            resources: Vec::new(),
            position: HashMap::new(),
            errors: Vec::new(),
        };
        for r in [
            resource("postgres_view.s.a", &["postgres_view.s.c"]),
            resource("postgres_view.s.b", &["postgres_view.s.a"]),
            resource("postgres_view.s.c", &["postgres_view.s.b"]),
            resource("postgres_view.s.d", &["postgres_view.s.a"]),
        ] {
            b.add(
                r.kind.name(),
                &r.address["postgres_view.".len()..],
                r.attributes,
                r.dependencies,
            );
        }
        let graph = b.finish().unwrap();
        assert_eq!(
            graph.cycle().unwrap(),
            [
                "postgres_view.s.a",
                "postgres_view.s.b",
                "postgres_view.s.c",
                "postgres_view.s.a"
            ]
        );
        let mut acyclic = Builder {
            resources: Vec::new(),
            position: HashMap::new(),
            errors: Vec::new(),
        };
        acyclic.add("postgres_view", "s.a", Value::Null, vec![]);
        acyclic.add(
            "postgres_view",
            "s.b",
            Value::Null,
            vec!["postgres_view.s.a".into()],
        );
        assert!(acyclic.finish().unwrap().cycle().is_none());
    }

    #[test]
    fn unknown_dependencies_and_duplicate_addresses_are_engine_errors() {
        let mut b = Builder {
            resources: Vec::new(),
            position: HashMap::new(),
            errors: Vec::new(),
        };
        b.add(
            "postgres_view",
            "s.a",
            Value::Null,
            vec!["postgres_view.s.z".into()],
        );
        assert!(matches!(
            b.finish(),
            Err(CompileError::UnknownDependency { .. })
        ));
        let mut b = Builder {
            resources: Vec::new(),
            position: HashMap::new(),
            errors: Vec::new(),
        };
        b.add("postgres_view", "s.a", Value::Null, vec![]);
        b.add("postgres_view", "s.a", Value::Null, vec![]);
        assert!(matches!(b.finish(), Err(CompileError::DuplicateAddress(_))));
    }
}
