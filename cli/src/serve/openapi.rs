//! The OpenAPI 3.1 document of `ds serve` (`GET /openapi.json`). Tests check every response against it.

use serde_json::{Value, json};

/// A path parameter that is a model name.
fn name_param(name: &str, what: &str) -> Value {
    json!({
        "name": name, "in": "path", "required": true,
        "description": format!("the {what}'s name (case-insensitive)"),
        "schema": { "type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_]{0,62}$" },
    })
}

/// A GET operation answering `schema` with 200 (with an ETag), 304, 400 and 404 as the path allows.
fn get(summary: &str, id: &str, schema: &str, params: Vec<Value>) -> Value {
    let mut responses = json!({
        "200": {
            "description": "the answer",
            "headers": { "ETag": { "description": "the model hash", "schema": { "type": "string" } } },
            "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } },
        },
        "304": { "description": "not modified: If-None-Match named the current ETag" },
    });
    if !params.is_empty() {
        responses["400"] = json!({
            "description": "a name that cannot be one",
            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } },
        });
        responses["404"] = json!({
            "description": "no such object; close matches in did_you_mean",
            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } },
        });
    }
    json!({ "get": {
        "summary": summary, "operationId": id, "parameters": params, "responses": responses,
    } })
}

fn string_or_null() -> Value {
    json!({ "type": ["string", "null"] })
}

fn list_of(schema: Value) -> Value {
    json!({ "type": "array", "items": schema })
}

fn strings() -> Value {
    list_of(json!({ "type": "string" }))
}

fn object(required: &[&str], properties: Value) -> Value {
    json!({ "type": "object", "required": required, "properties": properties })
}

/// The document.
pub(crate) fn document() -> Value {
    let doc = json!({ "oneOf": [ { "type": "null" }, object(&["text", "markdown", "tags"], json!({
        "text": string_or_null(), "markdown": string_or_null(),
        "tags": { "type": "object", "additionalProperties": { "type": "string" } },
    })) ] });
    let trigger = json!({ "oneOf": [
        { "type": "null" },
        object(&["interval_seconds"], json!({ "interval_seconds": { "type": "integer", "minimum": 1 } })),
        object(&["cron"], json!({ "cron": { "type": "string" } })),
        object(&["external"], json!({ "external": { "const": true } })),
    ] });
    let repo = json!({ "type": ["string", "null"], "description": "owner/name@branch" });
    let policy = list_of(object(
        &["name", "allowed", "not_allowed"],
        json!({
            "name": string_or_null(),
            "allowed": { "oneOf": [ { "type": "null" }, strings() ] },
            "not_allowed": strings(),
        }),
    ));
    let store = json!({ "type": "string" });
    let zone = json!({ "type": "string" });
    let team = json!({ "type": "string" });
    let ws = json!({ "type": "string" });
    let dataset = json!({ "type": "string" });
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "ds model API",
            "version": "1",
            "description": "The ds model, read-only: zones, teams, datastores and their datasets' schemas (also as JSON Schema and Avro), workspaces with the views a consumer reads, and who depends on a store. Every answer carries the model hash as its ETag.",
        },
        "paths": {
            "/healthz": { "get": {
                "summary": "The model is loaded", "operationId": "healthz", "parameters": [],
                "responses": { "200": { "description": "loaded", "content": { "application/json": {
                    "schema": { "$ref": "#/components/schemas/Health" } } } } },
            } },
            "/openapi.json": { "get": {
                "summary": "This document", "operationId": "openapi", "parameters": [],
                "responses": { "200": { "description": "the OpenAPI document", "content": {
                    "application/json": { "schema": { "type": "object" } } } } },
            } },
            "/v1/ecosystem": get("The ecosystem in numbers", "ecosystem", "Ecosystem", vec![]),
            "/v1/zones": get("Every zone", "zones", "Zones", vec![]),
            "/v1/zones/{zone}": get("One zone: owner, policies, teams", "zone", "Zone", vec![name_param("zone", "zone")]),
            "/v1/zones/{zone}/teams/{team}": get("One team: owner, datastores, workspaces", "team", "Team",
                vec![name_param("zone", "zone"), name_param("team", "team")]),
            "/v1/teams": get("Every team", "teams", "Teams", vec![]),
            "/v1/datastores": get("Every datastore", "datastores", "Datastores", vec![]),
            "/v1/datastores/{datastore}": get("One datastore: capture, trigger, datasets", "datastore", "Datastore",
                vec![name_param("datastore", "datastore")]),
            "/v1/datastores/{datastore}/dependants": get("Every workspace that consumes the datastore, through transformers too",
                "dependants", "Dependants", vec![name_param("datastore", "datastore")]),
            "/v1/datastores/{datastore}/datasets/{dataset}": get("One dataset's schema", "dataset", "Dataset",
                vec![name_param("datastore", "datastore"), name_param("dataset", "dataset")]),
            "/v1/datastores/{datastore}/datasets/{dataset}/json-schema": get("The dataset's rows as a JSON Schema (2020-12)",
                "datasetJsonSchema", "JsonSchema", vec![name_param("datastore", "datastore"), name_param("dataset", "dataset")]),
            "/v1/datastores/{datastore}/datasets/{dataset}/avro": get("The dataset's rows as an Avro record schema",
                "datasetAvro", "Avro", vec![name_param("datastore", "datastore"), name_param("dataset", "dataset")]),
            "/v1/workspaces": get("Every workspace", "workspaces", "Workspaces", vec![]),
            "/v1/workspaces/{workspace}": get("One workspace: groups, sinks and the views to read", "workspace", "Workspace",
                vec![name_param("workspace", "workspace")]),
        },
        "components": { "schemas": {
            "Error": object(&["error"], json!({
                "error": { "type": "string" }, "asked": { "type": "string" }, "kind": { "type": "string" },
                "did_you_mean": strings(),
            })),
            "Health": object(&["status", "model_hash", "revision", "datasets"], json!({
                "status": { "const": "ok" }, "model_hash": { "type": "string" }, "revision": string_or_null(),
                "datasets": { "type": "integer", "minimum": 0 },
            })),
            "Ecosystem": object(&["name", "owning_repo", "zones", "teams", "datastores", "datasets", "workspaces", "platforms", "model_hash"], json!({
                "name": string_or_null(), "owning_repo": repo, "documentation": doc,
                "zones": { "type": "integer" }, "teams": { "type": "integer" }, "datastores": { "type": "integer" },
                "datasets": { "type": "integer" }, "workspaces": { "type": "integer" },
                "platforms": list_of(object(&["name", "data_platforms"], json!({
                    "name": { "type": "string" },
                    "data_platforms": list_of(object(&["name", "milestoning"], json!({
                        "name": { "type": "string" }, "milestoning": { "enum": ["LIVE_ONLY", "FORENSIC"] },
                    }))),
                }))),
                "model_hash": { "type": "string" }, "revision": string_or_null(),
            })),
            "Zones": object(&["zones"], json!({ "zones": list_of(object(&["name", "teams"], json!({
                "name": zone, "teams": { "type": "integer" } }))) })),
            "Zone": object(&["name", "owning_repo", "teams", "team_declarations", "policies"], json!({
                "name": zone, "owning_repo": repo, "documentation": doc, "teams": strings(),
                "team_declarations": list_of(object(&["name", "owning_repo"], json!({ "name": team, "owning_repo": repo }))),
                "policies": object(&["classification", "location", "vendor", "data_platform"], json!({
                    "classification": policy, "location": policy, "vendor": policy, "data_platform": policy,
                })),
            })),
            "Teams": object(&["teams"], json!({ "teams": list_of(object(&["zone", "name"], json!({
                "zone": zone, "name": team }))) })),
            "Team": object(&["zone", "name", "owning_repo", "datastores", "workspaces"], json!({
                "zone": zone, "name": team, "owning_repo": repo, "documentation": doc,
                "datastores": strings(), "workspaces": strings(),
            })),
            "Datastores": object(&["datastores"], json!({ "datastores": list_of(object(&["name", "team", "capture", "datasets"], json!({
                "name": store, "team": team, "capture": string_or_null(), "datasets": { "type": "integer" } }))) })),
            "Datastore": object(&["name", "team", "zone", "production_status", "deprecated", "capture", "transformer", "datasets"], json!({
                "name": store, "team": team, "zone": zone,
                "production_status": { "enum": ["PRODUCTION", "NOT_PRODUCTION"] },
                "deprecated": { "type": "boolean" }, "documentation": doc,
                "capture": { "oneOf": [ { "type": "null" }, object(&["kind", "consistency", "trigger"], json!({
                    "kind": { "enum": ["cdc", "sql_snapshot", "sql_watermark", "kafka", null] },
                    "consistency": { "enum": ["MULTI_DATASET", "SINGLE_DATASET"] },
                    "trigger": trigger,
                })) ] },
                "transformer": { "oneOf": [ { "type": "null" }, object(&["workspace", "name"], json!({
                    "workspace": ws, "name": { "type": "string" } })) ] },
                "datasets": strings(),
            })),
            "Dependants": object(&["datastore", "dependants"], json!({
                "datastore": store,
                "dependants": list_of(object(&["workspace", "team", "datastore", "datasets", "via"], json!({
                    "workspace": ws, "team": team, "datastore": store, "datasets": strings(),
                    "via": { "description": "the stores from the one asked to the one consumed, through transformers", "type": "array", "items": { "type": "string" } },
                }))),
            })),
            "Dataset": object(&["datastore", "name", "deprecated", "classifications", "primary_key", "partition_key", "columns"], json!({
                "datastore": store, "name": dataset, "deprecated": { "type": "boolean" }, "documentation": doc,
                "classifications": strings(), "primary_key": strings(), "partition_key": strings(),
                "columns": list_of(object(&["name", "type", "nullable", "primary_key", "classifications", "doc"], json!({
                    "name": { "type": "string" }, "type": string_or_null(), "nullable": { "type": "boolean" },
                    "primary_key": { "type": "boolean" }, "classifications": strings(), "doc": string_or_null(),
                }))),
            })),
            "JsonSchema": object(&["$schema", "$id", "title", "type", "properties", "required"], json!({
                "$schema": { "const": "https://json-schema.org/draft/2020-12/schema" },
                "$id": { "type": "string" }, "title": { "type": "string" }, "type": { "const": "object" },
                "properties": { "type": "object" }, "required": strings(),
                "additionalProperties": { "const": false },
            })),
            "Avro": object(&["type", "name", "namespace", "fields"], json!({
                "type": { "const": "record" }, "name": { "type": "string" }, "namespace": { "type": "string" },
                "doc": { "type": "string" },
                "fields": list_of(object(&["name", "type"], json!({
                    "name": { "type": "string" }, "doc": { "type": "string" },
                    "type": { "type": ["string", "array", "object"],
                        "description": "a primitive type's name, a union (nullable columns: null first) or a logical type" },
                    "default": { "type": "null", "description": "nullable columns only" },
                }))),
            })),
            "Workspaces": object(&["workspaces"], json!({ "workspaces": list_of(object(&["name", "team"], json!({
                "name": ws, "team": team }))) })),
            "Workspace": object(&["name", "team", "zone", "priority", "schema", "reader_role", "dataset_groups", "transformers"], json!({
                "name": ws, "team": team, "zone": zone, "priority": string_or_null(),
                "schema": { "type": "string", "description": "the workspace's schema in the merge database" },
                "reader_role": { "type": "string" },
                "dataset_groups": list_of(object(&["name", "data_platform", "milestoning", "sinks"], json!({
                    "name": { "type": "string" }, "data_platform": string_or_null(),
                    "milestoning": { "enum": ["LIVE_ONLY", "FORENSIC"] },
                    "sinks": list_of(object(&["datastore", "dataset", "deprecations_allowed", "view", "history_view"], json!({
                        "datastore": store, "dataset": dataset, "deprecations_allowed": { "type": "boolean" },
                        "view": { "type": "string", "description": "schema.view: the live rows" },
                        "history_view": { "type": ["string", "null"], "description": "schema.view: every version (forensic groups)" },
                    }))),
                }))),
                "transformers": list_of(object(&["name", "outputs", "trigger"], json!({
                    "name": { "type": "string" }, "outputs": strings(), "trigger": trigger,
                }))),
            })),
        } },
    })
}
