//! PostgreSQL resources in a platform's merge database: schemas, tables, views, roles and grants.

pub mod live;

use serde::Deserialize;

/// The typed attributes of a `postgres_schema` or `postgres_role`: where it lives.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Placed {
    /// `host:port/database`.
    pub database: String,
    /// The credential name.
    pub credential: String,
    /// The object's name.
    pub name: String,
    /// The platform (schemas).
    #[serde(default)]
    pub platform: Option<String>,
    /// Whether the role may log in (roles; always false).
    #[serde(default)]
    pub login: Option<bool>,
}

/// The typed attributes of a `postgres_table`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableConfig {
    /// `control`, `staging`, `merge_live`, `merge_forensic` or `landing`.
    pub role: String,
    /// `"<name> <type>[ not null], ..."`.
    pub columns: String,
    /// Key columns.
    #[serde(default)]
    pub primary_key: Vec<String>,
}

/// The typed attributes of a `postgres_view`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewConfig {
    /// The `SELECT`.
    pub definition: String,
}

/// The typed attributes of a `postgres_grant`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantConfig {
    /// `USAGE`, `SELECT`, ...
    pub privileges: Vec<String>,
}

fn typed<T: for<'de> Deserialize<'de>>(attributes: &Value) -> Result<T, String> {
    T::deserialize(attributes).map_err(|e| e.to_string())
}

fn validate_table(attributes: &Value) -> Result<(), String> {
    let config: TableConfig = typed(attributes)?;
    if system_columns(&config.role).is_empty() && config.role != "control" {
        return Err(format!("unknown table role `{}`", config.role));
    }
    for column in config.columns.split(", ").filter(|c| !c.is_empty()) {
        let parsed = Column::parse(column)
            .ok_or_else(|| format!("column `{column}` is not `<name> <type>`"))?;
        if parsed.ty.is_none() {
            return Err(format!("column `{column}` has no known type"));
        }
    }
    Ok(())
}

use serde_json::{Map, Value};

use crate::kind::{
    AttributeChange, Planned, ResourceKind, action_of, change, diff_values, first_segment,
};
use crate::types::ColumnType;

/// `postgres_schema`: a schema (one per data platform, one per workspace).
pub struct Schema;

impl ResourceKind for Schema {
    fn name(&self) -> &'static str {
        "postgres_schema"
    }
    fn validate(&self, attributes: &Value) -> Result<(), String> {
        typed::<Placed>(attributes).map(|_| ())
    }
    fn live(&self) -> Option<&dyn crate::live::Live> {
        Some(&live::SchemaLive)
    }
    fn provider(&self) -> &'static str {
        "postgres"
    }
    fn replace_on(&self) -> &'static [&'static str] {
        &["database", "name"]
    }
}

/// `postgres_table`: a control, staging, merge or landing table. Tables hold data, so they are protected.
///
/// The address is `postgres_table.<schema>.<name>`; the database is the schema's. Attributes: `role`
/// (`control`, `staging`, `merge_live`, `merge_forensic`, `landing`), `columns` (the model's columns in
/// order, as one string `"<name> <type>[ not null], ..."` in the model language's spelling, see
/// [`Column::parse_list`]; the role's system columns, [`system_columns`], follow them) and `primary_key`
/// (column names).
///
/// Columns change in place when the change is backwards compatible: a new nullable column, a type that
/// widens (`ColumnType::widens_to`), a column that becomes nullable, and a column the model does not have
/// (dropped: that is how drift is repaired). Anything else (a narrowed or changed type, a column that
/// becomes NOT NULL, a new NOT NULL column, another primary key) needs the table rebuilt: a replace.
pub struct Table;

impl ResourceKind for Table {
    fn name(&self) -> &'static str {
        "postgres_table"
    }
    fn validate(&self, attributes: &Value) -> Result<(), String> {
        validate_table(attributes)
    }
    fn live(&self) -> Option<&dyn crate::live::Live> {
        Some(&live::TableLive)
    }
    fn provider(&self) -> &'static str {
        "postgres"
    }
    fn protected(&self) -> bool {
        true
    }
    fn container(&self, address: &str) -> Option<String> {
        first_segment(address).map(|schema| format!("postgres_schema.{schema}"))
    }
    fn replace_on(&self) -> &'static [&'static str] {
        &["role", "primary_key"]
    }
    fn plan(&self, desired: &Value, prior: &Value) -> Planned {
        let mut changes = Vec::new();
        let empty = Map::new();
        let d = desired.as_object().unwrap_or(&empty);
        let p = prior.as_object().unwrap_or(&empty);
        let mut keys: Vec<&String> = d.keys().chain(p.keys()).collect();
        keys.sort();
        keys.dedup();
        for key in keys {
            let (dv, pv) = (d.get(key), p.get(key));
            if key == "columns" {
                diff_columns(
                    dv.unwrap_or(&Value::Null),
                    pv.unwrap_or(&Value::Null),
                    &mut changes,
                );
                continue;
            }
            let before = changes.len();
            match (dv, pv) {
                (Some(dv), Some(pv)) => diff_values(key, dv, pv, &mut changes),
                (dv, pv) if dv != pv => changes.push(change(key.clone(), pv.cloned(), dv.cloned())),
                _ => {}
            }
            for c in &mut changes[before..] {
                c.forces_replace = self.replace_on().contains(&key.as_str());
            }
        }
        Planned {
            action: action_of(&changes),
            changes,
        }
    }
}

/// The columns every table of a role carries after the model's columns: `(name, type)`, all NOT NULL
/// except where noted. This is the physical contract the merge jobs and views rely on.
pub fn system_columns(role: &str) -> &'static [(&'static str, &'static str, bool)] {
    match role {
        "merge_live" => &[
            ("ds_surf_key_hash", "char(32)", false),
            ("ds_surf_all_hash", "char(32)", false),
            ("ds_surf_batch_id", "integer", false),
        ],
        // `ds_surf_op`: `u` (insert or update) or `d` (delete) for a batch of change events (cdc, kafka);
        // NULL for a snapshot.
        "staging" => &[
            ("ds_surf_key_hash", "char(32)", false),
            ("ds_surf_all_hash", "char(32)", false),
            ("ds_surf_batch_id", "integer", false),
            ("ds_surf_op", "char(1)", true),
        ],
        "merge_forensic" => &[
            ("ds_surf_key_hash", "char(32)", false),
            ("ds_surf_all_hash", "char(32)", false),
            ("ds_surf_batch_in", "integer", false),
            ("ds_surf_batch_out", "integer", false),
        ],
        // What the sink connector writes besides the data columns (Debezium's ExtractNewRecordState with
        // `add.fields=op,lsn,source.ts_ms` and deletes rewritten): the operation (r, c, u, d), the source
        // LSN, the commit time (ms) and the delete marker ("true"/"false"). `ds_landing_id` (an identity)
        // orders rows as they landed.
        "landing" => &[
            ("ds_landing_id", "bigint", false),
            ("__op", "varchar(1)", true),
            ("__lsn", "bigint", true),
            ("__source_ts_ms", "bigint", true),
            ("__deleted", "varchar(5)", true),
        ],
        _ => &[],
    }
}

/// A table column as recorded: `"<name> <type>"`, with a ` not null` suffix when NULL is not allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column<'a> {
    /// The column name.
    pub name: &'a str,
    /// The type as written (model spelling).
    pub type_text: &'a str,
    /// The parsed type, when it parses.
    pub ty: Option<ColumnType>,
    /// Whether NULL is allowed.
    pub nullable: bool,
}

impl<'a> Column<'a> {
    /// Reads `"<name> <type>[ not null]"`.
    pub fn parse(text: &'a str) -> Option<Column<'a>> {
        let (name, rest) = text.split_once(' ')?;
        let (type_text, nullable) = match rest.strip_suffix(" not null") {
            Some(ty) => (ty, false),
            None => (rest, true),
        };
        Some(Column {
            name,
            type_text,
            ty: ColumnType::parse(type_text).ok(),
            nullable,
        })
    }
}

impl Column<'_> {
    /// Reads a table's `columns` attribute: `"<column>, <column>, ..."` (types never hold `", "`).
    pub fn parse_list(text: &str) -> Vec<Column<'_>> {
        if text.is_empty() {
            return Vec::new();
        }
        text.split(", ").filter_map(Column::parse).collect()
    }

    /// The column as recorded.
    pub fn to_text(&self) -> String {
        if self.nullable {
            format!("{} {}", self.name, self.type_text)
        } else {
            format!("{} {} not null", self.name, self.type_text)
        }
    }
}

fn columns(value: &Value) -> Vec<Column<'_>> {
    value.as_str().map(Column::parse_list).unwrap_or_default()
}

fn diff_columns(desired: &Value, prior: &Value, out: &mut Vec<AttributeChange>) {
    let desired = columns(desired);
    let prior = columns(prior);
    for old in &prior {
        let path = format!("columns.{}", old.name);
        match desired.iter().find(|c| c.name == old.name) {
            // A column the model does not have (added by hand, say) is dropped in place; removing a column
            // from the model is a breaking change that governance refuses before it gets here.
            None => out.push(change(path, Some(Value::String(old.to_text())), None)),
            Some(new) => {
                if old.ty != new.ty || (old.ty.is_none() && old.type_text != new.type_text) {
                    let widens = matches!((&old.ty, &new.ty), (Some(o), Some(n)) if o.widens_to(n));
                    out.push(AttributeChange {
                        forces_replace: !widens,
                        ..change(
                            format!("{path}.type"),
                            Some(Value::String(old.type_text.to_string())),
                            Some(Value::String(new.type_text.to_string())),
                        )
                    });
                }
                if old.nullable != new.nullable {
                    out.push(AttributeChange {
                        // NULL → NOT NULL may fail on existing rows; the other way is always safe.
                        forces_replace: !new.nullable,
                        ..change(
                            format!("{path}.nullable"),
                            Some(Value::Bool(old.nullable)),
                            Some(Value::Bool(new.nullable)),
                        )
                    });
                }
            }
        }
    }
    for new in &desired {
        if !prior.iter().any(|c| c.name == new.name) {
            out.push(AttributeChange {
                forces_replace: !new.nullable,
                ..change(
                    format!("columns.{}", new.name),
                    None,
                    Some(Value::String(new.to_text())),
                )
            });
        }
    }
    // A reordering alone is not a change worth a plan line: columns are addressed by name.
    out.sort_by(|a, b| a.path.cmp(&b.path));
}

/// `postgres_view`: a workspace view over merge tables, addressed `postgres_view.<schema>.<name>`; its one
/// attribute is its `definition`. Views hold no data: a changed definition is applied in place (dropped and
/// created again in one transaction).
pub struct View;

impl ResourceKind for View {
    fn name(&self) -> &'static str {
        "postgres_view"
    }
    fn validate(&self, attributes: &Value) -> Result<(), String> {
        typed::<ViewConfig>(attributes).map(|_| ())
    }
    fn live(&self) -> Option<&dyn crate::live::Live> {
        Some(&live::ViewLive)
    }
    fn provider(&self) -> &'static str {
        "postgres"
    }
    fn container(&self, address: &str) -> Option<String> {
        first_segment(address).map(|schema| format!("postgres_schema.{schema}"))
    }
}

/// `postgres_role`: a workspace's read role (no login).
pub struct Role;

impl ResourceKind for Role {
    fn name(&self) -> &'static str {
        "postgres_role"
    }
    fn validate(&self, attributes: &Value) -> Result<(), String> {
        typed::<Placed>(attributes).map(|_| ())
    }
    fn live(&self) -> Option<&dyn crate::live::Live> {
        Some(&live::RoleLive)
    }
    fn provider(&self) -> &'static str {
        "postgres"
    }
    fn replace_on(&self) -> &'static [&'static str] {
        &["database", "name"]
    }
}

/// `postgres_grant`: `privileges` of a role on a schema (`postgres_grant.<role>.<schema>`) or on a view
/// (`postgres_grant.<role>.<schema>.<view>`).
pub struct Grant;

impl ResourceKind for Grant {
    fn name(&self) -> &'static str {
        "postgres_grant"
    }
    fn validate(&self, attributes: &Value) -> Result<(), String> {
        typed::<GrantConfig>(attributes).map(|_| ())
    }
    fn live(&self) -> Option<&dyn crate::live::Live> {
        Some(&live::GrantLive)
    }
    fn provider(&self) -> &'static str {
        "postgres"
    }
    fn container(&self, address: &str) -> Option<String> {
        first_segment(address).map(|role| format!("postgres_role.{role}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Action;
    use serde_json::json;

    fn table(columns: Value) -> Value {
        json!({"role": "merge_live", "columns": columns, "primary_key": ["id"]})
    }

    fn plan(old: Value, new: Value) -> Planned {
        Table.plan(&table(new), &table(old))
    }

    #[test]
    fn compatible_column_changes_are_updates() {
        let old = json!("id integer not null, v varchar(10) not null");
        assert_eq!(plan(old.clone(), old.clone()).action, Action::NoOp);
        let added = json!("id integer not null, v varchar(10) not null, w text");
        let p = plan(old.clone(), added);
        assert_eq!(p.action, Action::Update);
        assert_eq!(p.changes[0].path, "columns.w");
        let widened = json!("id bigint not null, v varchar(20)");
        let p = plan(old, widened);
        assert_eq!(p.action, Action::Update);
        let paths: Vec<&str> = p.changes.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(
            paths,
            ["columns.id.type", "columns.v.nullable", "columns.v.type"]
        );
    }

    #[test]
    fn incompatible_changes_replace() {
        let old = json!("id integer not null, v varchar(10)");
        let dropped = plan(old.clone(), json!("id integer not null"));
        assert_eq!(dropped.action, Action::Update);
        assert_eq!(dropped.changes[0].path, "columns.v");
        for new in [
            json!("id smallint not null, v varchar(10)"),
            json!("id integer not null, v varchar(10) not null"),
            json!("id integer not null, v varchar(10), n text not null"),
        ] {
            let p = plan(old.clone(), new.clone());
            assert_eq!(p.action, Action::Replace, "{new}");
            assert!(p.changes.iter().any(|c| c.forces_replace));
        }
        let mut other_key = table(old.clone());
        other_key["primary_key"] = json!(["v"]);
        assert_eq!(Table.plan(&other_key, &table(old)).action, Action::Replace);
    }

    #[test]
    fn typed_attributes_are_validated() {
        assert!(Table.validate(&table(json!("id integer not null"))).is_ok());
        assert!(
            Table
                .validate(&json!({"role": "merge_live", "columns": "id integer", "colour": 1}))
                .is_err()
        );
        assert!(
            Table
                .validate(&json!({"role": "merge_live", "columns": "id intger"}))
                .is_err()
        );
        assert!(
            Table
                .validate(&json!({"role": "sideways", "columns": "id integer"}))
                .is_err()
        );
        assert!(View.validate(&json!({"definition": "SELECT 1"})).is_ok());
        assert!(View.validate(&json!({"definition": 1})).is_err());
        assert!(Grant.validate(&json!({"privileges": ["SELECT"]})).is_ok());
        assert!(
            Schema
                .validate(
                    &json!({"database": "h:1/d", "credential": "c", "name": "s", "platform": "p"})
                )
                .is_ok()
        );
        assert!(
            Schema
                .validate(&json!({"database": "h:1/d", "name": "s"}))
                .is_err()
        );
    }
}
