//! What `ds serve` answers, computed once at start-up from the validated model: every response body, keyed
//! by its path (names lowercased), so that a request is one hash lookup.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;
use planner::model::{Column, Dataset, Milestoning, Model, ProductionStatus, Team, Trigger};
use planner::types::ColumnType;
use planner::validate::{Index, Resolution, resolve_group};
use providers::physical::identifier;
use serde_json::{Value, json};

/// The responses, and the names of each collection (for "did you mean" on a 404).
pub(crate) struct Catalog {
    /// Path (lowercase, without a trailing slash) → JSON body.
    pub(crate) bodies: HashMap<String, Bytes>,
    /// Collection → its names as written, for suggestions: `zones`, `teams` (`zone/team`), `datastores`,
    /// `datasets` (`store/dataset`), `workspaces`.
    pub(crate) names: HashMap<&'static str, Vec<String>>,
    /// `--rev`, when the model was read from git.
    pub(crate) revision: Option<String>,
    /// Counts for `/healthz`.
    pub(crate) datasets: usize,
}

fn body(value: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(value).expect("JSON values serialize"))
}

fn doc(documentation: &Option<planner::model::Documentation>) -> Value {
    match documentation {
        Some(d) => json!({
            "text": d.text,
            "markdown": d.markdown,
            "tags": d.tags.iter().cloned().collect::<BTreeMap<String, String>>(),
        }),
        None => Value::Null,
    }
}

fn lower(s: &str) -> String {
    s.to_ascii_lowercase()
}

/// Builds every response of `model`.
pub(crate) fn build(model: &Model, hash: String, revision: Option<String>) -> Catalog {
    let index = Index::build(model);
    let mut bodies: HashMap<String, Bytes> = HashMap::new();
    let mut names: HashMap<&'static str, Vec<String>> = HashMap::new();
    let eco = model.ecosystems.first();
    let all_datasets: usize = index
        .stores
        .values()
        .filter_map(|defs| defs.first())
        .map(|s| s.store.datasets.len())
        .sum();

    // Zones and teams.
    let mut zone_list = Vec::new();
    for zone in &model.zones {
        let teams: Vec<&Team> = model
            .teams
            .iter()
            .filter(|t| t.zone.key() == zone.name.key())
            .collect();
        let owner = model.zone_owner(&zone.name.value).map(|r| r.to_string());
        let policies = |list: &[planner::model::Policy]| -> Vec<Value> {
            list.iter()
                .map(|p| {
                    json!({
                        "name": p.name.as_ref().map(|n| n.value.clone()),
                        "allowed": p.allowed.as_ref().map(|a| a.iter().map(|v| v.value.clone()).collect::<Vec<_>>()),
                        "not_allowed": p.not_allowed.iter().map(|v| v.value.clone()).collect::<Vec<_>>(),
                    })
                })
                .collect()
        };
        let detail = json!({
            "name": zone.name.value,
            "owning_repo": owner,
            "documentation": doc(&zone.documentation),
            "teams": teams.iter().map(|t| t.name.value.clone()).collect::<Vec<_>>(),
            "team_declarations": zone.team_declarations.iter().map(|d| json!({
                "name": d.name.value,
                "owning_repo": d.owning_repo.as_ref().map(|r| r.to_string()),
            })).collect::<Vec<_>>(),
            "policies": {
                "classification": policies(&zone.classification_policies),
                "location": policies(&zone.location_policies),
                "vendor": policies(&zone.vendor_policies),
                "data_platform": policies(&zone.data_platform_policies),
            },
        });
        bodies.insert(format!("/v1/zones/{}", zone.name.key()), body(&detail));
        zone_list.push(json!({ "name": zone.name.value, "teams": teams.len() }));
        names
            .entry("zones")
            .or_default()
            .push(zone.name.value.clone());
    }
    bodies.insert("/v1/zones".into(), body(&json!({ "zones": zone_list })));

    let mut team_list = Vec::new();
    for team in &model.teams {
        let owner = model
            .team_owner(&team.zone.value, &team.name.value)
            .map(|r| r.to_string());
        let detail = json!({
            "zone": team.zone.value,
            "name": team.name.value,
            "owning_repo": owner,
            "documentation": doc(&team.documentation),
            "datastores": team.datastores.iter().map(|s| s.name.value.clone()).collect::<Vec<_>>(),
            "workspaces": team.workspaces.iter().map(|w| w.name.value.clone()).collect::<Vec<_>>(),
        });
        bodies.insert(
            format!("/v1/zones/{}/teams/{}", team.zone.key(), team.name.key()),
            body(&detail),
        );
        team_list.push(json!({ "zone": team.zone.value, "name": team.name.value }));
        names
            .entry("teams")
            .or_default()
            .push(format!("{}/{}", team.zone.value, team.name.value));
    }
    bodies.insert("/v1/teams".into(), body(&json!({ "teams": team_list })));

    // Datastores and datasets.
    let consumers = Consumers::of(model);
    let mut store_list = Vec::new();
    let mut store_names: Vec<&String> = index.stores.keys().collect();
    store_names.sort();
    for key in store_names {
        let Some(at) = index.stores[key].first() else {
            continue;
        };
        let store = at.store;
        let capture = store.captures.first();
        let detail = json!({
            "name": store.name.value,
            "team": at.team.name.value,
            "zone": at.team.zone.value,
            "production_status": match store.production_status {
                ProductionStatus::Production => "PRODUCTION",
                ProductionStatus::NotProduction => "NOT_PRODUCTION",
            },
            "deprecated": store.deprecated,
            "documentation": doc(&store.documentation),
            "capture": capture.map(|c| json!({
                "kind": c.kind.map(|k| k.as_str()),
                "consistency": if c.single_dataset { "SINGLE_DATASET" } else { "MULTI_DATASET" },
                "trigger": c.trigger.as_ref().map(|t| trigger(&t.value)),
            })),
            "transformer": at.transformer.map(|(ws, tr)| json!({
                "workspace": ws.name.value,
                "name": tr.name.value,
            })),
            "datasets": store.datasets.iter().map(|d| d.name.value.clone()).collect::<Vec<_>>(),
        });
        bodies.insert(format!("/v1/datastores/{key}"), body(&detail));
        store_list.push(json!({
            "name": store.name.value,
            "team": at.team.name.value,
            "capture": capture.and_then(|c| c.kind).map(|k| k.as_str()),
            "datasets": store.datasets.len(),
        }));
        names
            .entry("datastores")
            .or_default()
            .push(store.name.value.clone());
        for dataset in &store.datasets {
            let base = format!("/v1/datastores/{key}/datasets/{}", dataset.name.key());
            bodies.insert(
                base.clone(),
                body(&dataset_json(&store.name.value, dataset)),
            );
            bodies.insert(
                format!("{base}/json-schema"),
                body(&json_schema(&store.name.value, dataset)),
            );
            bodies.insert(
                format!("{base}/avro"),
                body(&avro_schema(&store.name.value, dataset)),
            );
            names
                .entry("datasets")
                .or_default()
                .push(format!("{}/{}", store.name.value, dataset.name.value));
        }
        bodies.insert(
            format!("/v1/datastores/{key}/dependants"),
            body(&dependants(&consumers, key)),
        );
    }
    bodies.insert(
        "/v1/datastores".into(),
        body(&json!({ "datastores": store_list })),
    );

    // Workspaces.
    let mut ws_list = Vec::new();
    for team in &model.teams {
        for ws in &team.workspaces {
            let schema = identifier(&format!("ws_{}", ws.name.key()));
            let groups: Vec<Value> = ws
                .groups
                .iter()
                .map(|group| {
                    let platform = match resolve_group(model, &index, ws, group) {
                        Resolution::Resolved(dp) => Some(dp),
                        _ => None,
                    };
                    let forensic = platform.is_some_and(|dp| {
                        dp.data_platform
                            .milestoning
                            .as_ref()
                            .is_some_and(|m| m.value == Milestoning::Forensic)
                    });
                    let sinks: Vec<Value> = group
                        .sinks
                        .iter()
                        .map(|sink| {
                            let view = identifier(&format!(
                                "{}__{}__{}",
                                group.name.key(),
                                sink.store.key(),
                                sink.dataset.key()
                            ));
                            let history = forensic.then(|| {
                                format!(
                                    "{schema}.{}",
                                    identifier(&format!(
                                        "{}__{}__{}__history",
                                        group.name.key(),
                                        sink.store.key(),
                                        sink.dataset.key()
                                    ))
                                )
                            });
                            json!({
                                "datastore": sink.store.value,
                                "dataset": sink.dataset.value,
                                "deprecations_allowed": sink.deprecations_allowed,
                                "view": format!("{schema}.{view}"),
                                "history_view": history,
                            })
                        })
                        .collect();
                    json!({
                        "name": group.name.value,
                        "data_platform": platform.map(|dp| dp.data_platform.name.value.clone()),
                        "milestoning": if forensic { "FORENSIC" } else { "LIVE_ONLY" },
                        "sinks": sinks,
                    })
                })
                .collect();
            let detail = json!({
                "name": ws.name.value,
                "team": team.name.value,
                "zone": team.zone.value,
                "priority": ws.priority.as_ref().map(|p| p.value.clone()),
                "schema": schema,
                "reader_role": identifier(&format!("ws_{}_reader", ws.name.key())),
                "dataset_groups": groups,
                "transformers": ws.transformers.iter().map(|t| json!({
                    "name": t.name.value,
                    "outputs": t.outputs.iter().map(|o| o.name.value.clone()).collect::<Vec<_>>(),
                    "trigger": t.trigger.as_ref().map(|tr| trigger(&tr.value)),
                })).collect::<Vec<_>>(),
            });
            bodies.insert(format!("/v1/workspaces/{}", ws.name.key()), body(&detail));
            ws_list.push(json!({ "name": ws.name.value, "team": team.name.value }));
            names
                .entry("workspaces")
                .or_default()
                .push(ws.name.value.clone());
        }
    }
    bodies.insert(
        "/v1/workspaces".into(),
        body(&json!({ "workspaces": ws_list })),
    );

    let summary = json!({
        "name": eco.map(|e| e.name.value.clone()),
        "owning_repo": eco.and_then(|e| e.owning_repo.as_ref()).map(|r| r.to_string()),
        "documentation": eco.map_or(Value::Null, |e| doc(&e.documentation)),
        "zones": model.zones.len(),
        "teams": model.teams.len(),
        "datastores": names.get("datastores").map_or(0, Vec::len),
        "datasets": all_datasets,
        "workspaces": names.get("workspaces").map_or(0, Vec::len),
        "platforms": model.platforms.iter().map(|p| json!({
            "name": p.name.value,
            "data_platforms": p.data_platforms.iter().map(|dp| json!({
                "name": dp.name.value,
                "milestoning": if dp.milestoning.as_ref().is_some_and(|m| m.value == Milestoning::Forensic) { "FORENSIC" } else { "LIVE_ONLY" },
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "model_hash": hash,
        "revision": revision,
    });
    bodies.insert("/v1/ecosystem".into(), body(&summary));
    Catalog {
        bodies,
        names,
        revision,
        datasets: all_datasets,
    }
}

/// A trigger as JSON: `{"interval_seconds": 60}`, `{"cron": "..."}` or `{"external": true}`.
fn trigger(trigger: &Trigger) -> Value {
    match trigger {
        Trigger::Interval(seconds) => json!({ "interval_seconds": seconds }),
        Trigger::Cron(cron) => json!({ "cron": cron }),
        Trigger::External => json!({ "external": true }),
    }
}

/// The primary key of a dataset (lowercase), or every column when it has none.
fn key_of(dataset: &Dataset) -> Vec<String> {
    dataset.primary_key().iter().map(|k| lower(k)).collect()
}

fn classifications(
    list: &[planner::model::Spanned<planner::model::Classification>],
) -> Vec<String> {
    list.iter().map(|c| c.value.to_string()).collect()
}

fn columns(dataset: &Dataset) -> &[Column] {
    dataset.table.as_ref().map_or(&[], |t| t.columns.as_slice())
}

fn dataset_json(store: &str, dataset: &Dataset) -> Value {
    let key = key_of(dataset);
    json!({
        "datastore": store,
        "name": dataset.name.value,
        "deprecated": dataset.deprecated,
        "documentation": doc(&dataset.documentation),
        "classifications": classifications(&dataset.classifications),
        "primary_key": key,
        "partition_key": dataset.table.as_ref().and_then(|t| t.partition_key.as_ref())
            .map(|p| p.iter().map(|c| lower(&c.value)).collect::<Vec<_>>()).unwrap_or_default(),
        "columns": columns(dataset).iter().map(|c| json!({
            "name": c.name.value,
            "type": c.ty.as_ref().map(|t| t.value.to_string()),
            "nullable": c.nullable,
            "primary_key": key.contains(&lower(&c.name.value)),
            "classifications": classifications(&c.classifications),
            "doc": c.doc,
        })).collect::<Vec<_>>(),
    })
}

/// A column's JSON Schema (without nullability).
fn json_type(ty: &ColumnType) -> Value {
    use ColumnType::*;
    match ty {
        Boolean => json!({ "type": "boolean" }),
        Smallint => json!({ "type": "integer", "minimum": -32768, "maximum": 32767 }),
        Integer => json!({ "type": "integer", "minimum": -2147483648i64, "maximum": 2147483647 }),
        Bigint => json!({ "type": "integer" }),
        Real | Double => json!({ "type": "number" }),
        Decimal { precision, scale } => json!({
            "type": "number",
            "description": format!("decimal({precision},{scale})"),
        }),
        Char(n) => json!({ "type": "string", "maxLength": n }),
        Varchar(Some(n)) => json!({ "type": "string", "maxLength": n }),
        Varchar(None) | Text | Interval => json!({ "type": "string" }),
        Date => json!({ "type": "string", "format": "date" }),
        Timestamp => json!({
            "type": "string",
            "pattern": "^\\d{4}-\\d{2}-\\d{2}[T ]\\d{2}:\\d{2}:\\d{2}(\\.\\d+)?$",
            "description": "a timestamp without time zone",
        }),
        Timestamptz => json!({ "type": "string", "format": "date-time" }),
        Json => json!({}),
        Uuid => json!({ "type": "string", "format": "uuid" }),
        Bytea => json!({ "type": "string", "contentEncoding": "base64" }),
    }
}

fn json_schema(store: &str, dataset: &Dataset) -> Value {
    let mut properties = serde_json::Map::new();
    let mut required = Vec::new();
    for c in columns(dataset) {
        let mut schema = c.ty.as_ref().map_or(json!({}), |t| json_type(&t.value));
        if c.nullable
            && let Some(ty) = schema.get("type").cloned()
        {
            schema["type"] = json!([ty, "null"]);
        }
        if let Some(d) = &c.doc {
            schema["description"] = json!(d);
        }
        if !c.nullable {
            required.push(c.name.value.clone());
        }
        properties.insert(c.name.value.clone(), schema);
    }
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": format!("urn:ds:{}:{}", lower(store), dataset.name.key()),
        "title": format!("{store}.{}", dataset.name.value),
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

/// A column's Avro type (without nullability).
fn avro_type(ty: &ColumnType) -> Value {
    use ColumnType::*;
    match ty {
        Boolean => json!("boolean"),
        Smallint | Integer => json!("int"),
        Bigint => json!("long"),
        Real => json!("float"),
        Double => json!("double"),
        Decimal { precision, scale } => json!({
            "type": "bytes", "logicalType": "decimal", "precision": precision, "scale": scale,
        }),
        Char(_) | Varchar(_) | Text | Interval | Json => json!("string"),
        Date => json!({ "type": "int", "logicalType": "date" }),
        Timestamp => json!({ "type": "long", "logicalType": "local-timestamp-micros" }),
        Timestamptz => json!({ "type": "long", "logicalType": "timestamp-micros" }),
        Uuid => json!({ "type": "string", "logicalType": "uuid" }),
        Bytea => json!("bytes"),
    }
}

fn avro_schema(store: &str, dataset: &Dataset) -> Value {
    let fields: Vec<Value> = columns(dataset)
        .iter()
        .map(|c| {
            let ty =
                c.ty.as_ref()
                    .map_or(json!("string"), |t| avro_type(&t.value));
            let mut field = if c.nullable {
                json!({ "name": c.name.value, "type": ["null", ty], "default": null })
            } else {
                json!({ "name": c.name.value, "type": ty })
            };
            if let Some(d) = &c.doc {
                field["doc"] = json!(d);
            }
            field
        })
        .collect();
    let mut record = json!({
        "type": "record",
        "name": dataset.name.value,
        "namespace": format!("ds.{}", lower(store)),
        "fields": fields,
    });
    if let Some(text) = dataset.documentation.as_ref().and_then(|d| d.text.clone()) {
        record["doc"] = json!(text);
    }
    record
}

/// A workspace consuming a store: its name, its team, the datasets it reads.
type Consumer<'m> = (&'m str, &'m str, BTreeSet<&'m str>);

/// Who consumes each store, indexed once: per store (lowercase), the workspaces with a sink on it (name,
/// team, datasets), and per workspace the output stores of its transformers.
struct Consumers<'m> {
    by_store: HashMap<String, Vec<Consumer<'m>>>,
    outputs: HashMap<&'m str, Vec<String>>,
}

impl<'m> Consumers<'m> {
    fn of(model: &'m Model) -> Consumers<'m> {
        let mut by_store: HashMap<String, Vec<Consumer<'m>>> = HashMap::new();
        let mut outputs: HashMap<&'m str, Vec<String>> = HashMap::new();
        for team in &model.teams {
            for ws in &team.workspaces {
                let mut per_store: BTreeMap<String, BTreeSet<&'m str>> = BTreeMap::new();
                for sink in ws.groups.iter().flat_map(|g| g.sinks.iter()) {
                    per_store
                        .entry(sink.store.key())
                        .or_default()
                        .insert(sink.dataset.value.as_str());
                }
                for (store, datasets) in per_store {
                    by_store.entry(store).or_default().push((
                        ws.name.value.as_str(),
                        team.name.value.as_str(),
                        datasets,
                    ));
                }
                let outs: Vec<String> = ws
                    .transformers
                    .iter()
                    .flat_map(|t| t.outputs.iter().map(|o| o.name.key()))
                    .collect();
                if !outs.is_empty() {
                    outputs.insert(ws.name.value.as_str(), outs);
                }
            }
        }
        Consumers { by_store, outputs }
    }
}

/// Every workspace that consumes `store` (lowercase), directly or through transformers whose output stores
/// it consumes: workspace, team, the datasets it reads and the chain of stores it reads them through.
fn dependants(consumers: &Consumers<'_>, store: &str) -> Value {
    let mut out = Vec::new();
    let mut seen: BTreeSet<(&str, String)> = BTreeSet::new();
    let mut queue: Vec<(String, Vec<String>)> = vec![(store.to_string(), vec![store.to_string()])];
    while let Some((current, via)) = queue.pop() {
        for (ws, team, datasets) in consumers.by_store.get(&current).into_iter().flatten() {
            if !seen.insert((ws, current.clone())) {
                continue;
            }
            out.push(json!({
                "workspace": ws,
                "team": team,
                "datastore": current,
                "datasets": datasets,
                "via": via,
            }));
            for next in consumers.outputs.get(ws).into_iter().flatten() {
                if !via.contains(next) {
                    let mut chain = via.clone();
                    chain.push(next.clone());
                    queue.push((next.clone(), chain));
                }
            }
        }
    }
    out.sort_by_key(|d| d.to_string());
    json!({ "datastore": store, "dependants": out })
}
