//! The resource-kind contract and the shared attribute diff.

use serde_json::Value;

/// What a plan does to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// Nothing to do.
    NoOp,
    /// Create a resource that does not exist.
    Create,
    /// Change a resource in place.
    Update,
    /// Delete and create again (data in it is lost).
    Replace,
    /// Delete a resource the model no longer has.
    Delete,
}

impl Action {
    /// The plan symbol, as Terraform users know them.
    pub fn symbol(self) -> &'static str {
        match self {
            Action::NoOp => " ",
            Action::Create => "+",
            Action::Update => "~",
            Action::Replace => "-/+",
            Action::Delete => "-",
        }
    }

    /// The word used in JSON and summaries.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::NoOp => "no-op",
            Action::Create => "create",
            Action::Update => "update",
            Action::Replace => "replace",
            Action::Delete => "delete",
        }
    }

    /// Whether the action destroys the resource's current content.
    pub fn is_destructive(self) -> bool {
        matches!(self, Action::Replace | Action::Delete)
    }
}

/// One attribute that differs between the recorded and the desired resource.
#[derive(Debug, Clone, PartialEq)]
pub struct AttributeChange {
    /// A path into the attributes: `columns.email.type`, `config.topics`.
    pub path: String,
    /// The recorded value (`None`: absent).
    pub before: Option<Value>,
    /// The desired value (`None`: removed).
    pub after: Option<Value>,
    /// Whether this change alone forces a replace.
    pub forces_replace: bool,
    /// Whether the value is secret-derived and must be shown as `(sensitive)`.
    pub sensitive: bool,
}

/// The outcome of planning one existing resource.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// `NoOp`, `Update` or `Replace`.
    pub action: Action,
    /// Every attribute that differs, in path order.
    pub changes: Vec<AttributeChange>,
}

/// A resource type. Implementations are stateless values registered in [`kind`].
///
/// # Contract
/// - `plan` is pure: no IO, no clock, no secrets. It compares the desired attributes (from the compiled
///   model) with the recorded ones (from state, possibly refreshed) and returns every difference.
///   Equal attributes must give `NoOp`, so that a plan right after an apply is empty.
/// - A difference that the type can apply to the live object in place gives `Update`; one that can only be
///   had by dropping and creating the object again gives `Replace`, with `forces_replace` set on the
///   attributes responsible.
/// - `protected` types hold data (tables, slots, buckets): the engine refuses to delete or replace them
///   unless the user allows it for that address.
pub trait ResourceKind: Sync {
    /// The type name, the first part of an address: `postgres_table`.
    fn name(&self) -> &'static str;
    /// The provider that manages it: `postgres`.
    fn provider(&self) -> &'static str;
    /// The version of the attribute schema recorded in state.
    fn schema_version(&self) -> u32 {
        1
    }
    /// Whether resources of this type hold data.
    fn protected(&self) -> bool {
        false
    }
    /// Attributes holding secret-derived values, shown as `(sensitive)`.
    fn sensitive(&self) -> &'static [&'static str] {
        &[]
    }
    /// Plans an existing resource: see the contract above.
    fn plan(&self, desired: &Value, prior: &Value) -> Planned {
        diff_attributes(desired, prior, self.replace_on(), self.sensitive())
    }
    /// The resource that contains this one, named by its address (a table's schema, a grant's role), if
    /// any. A resource always depends on its container; the state does not repeat that dependency.
    fn container(&self, address: &str) -> Option<String> {
        let _ = address;
        None
    }
    /// Pure: checks that attributes have this kind's shape (its typed config parses), so that a malformed
    /// plan file or state is refused before anything is changed. The message says what is wrong.
    fn validate(&self, attributes: &Value) -> Result<(), String> {
        let _ = attributes;
        Ok(())
    }
    /// The IO half, when a provider can act on this kind yet.
    fn live(&self) -> Option<&dyn crate::live::Live> {
        None
    }
    /// Top-level attributes whose change forces a replace (used by the default [`ResourceKind::plan`]).
    fn replace_on(&self) -> &'static [&'static str] {
        &[]
    }
}

impl std::fmt::Debug for dyn ResourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Compares two attribute objects key by key (nested objects by their keys too), marking changes under
/// `replace_on` keys as forcing a replace.
pub fn diff_attributes(
    desired: &Value,
    prior: &Value,
    replace_on: &[&str],
    sensitive: &[&str],
) -> Planned {
    let mut changes = Vec::new();
    diff_values("", desired, prior, &mut changes);
    for change in &mut changes {
        let top = change.path.split('.').next().unwrap_or("");
        change.forces_replace = replace_on.contains(&top);
        change.sensitive = sensitive.contains(&top);
    }
    Planned {
        action: action_of(&changes),
        changes,
    }
}

/// `NoOp` without changes, `Replace` when any change forces it, `Update` otherwise.
pub fn action_of(changes: &[AttributeChange]) -> Action {
    if changes.is_empty() {
        Action::NoOp
    } else if changes.iter().any(|c| c.forces_replace) {
        Action::Replace
    } else {
        Action::Update
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Records the differences between two values at `path`; objects are compared key by key, everything else
/// (lists included) as a whole.
pub fn diff_values(path: &str, desired: &Value, prior: &Value, out: &mut Vec<AttributeChange>) {
    match (desired, prior) {
        (Value::Object(d), Value::Object(p)) => {
            let mut keys: Vec<&String> = d.keys().chain(p.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let sub = join(path, key);
                match (d.get(key), p.get(key)) {
                    (Some(dv), Some(pv)) => diff_values(&sub, dv, pv, out),
                    (Some(dv), None) => out.push(change(sub, None, Some(dv.clone()))),
                    (None, Some(pv)) => out.push(change(sub, Some(pv.clone()), None)),
                    (None, None) => {}
                }
            }
        }
        _ if desired == prior => {}
        _ => out.push(change(
            path.to_string(),
            Some(prior.clone()),
            Some(desired.clone()),
        )),
    }
}

/// A plain change, neither forcing a replace nor sensitive.
pub fn change(path: String, before: Option<Value>, after: Option<Value>) -> AttributeChange {
    AttributeChange {
        path,
        before,
        after,
        forces_replace: false,
        sensitive: false,
    }
}

/// The first name segment of an address: `s` in `postgres_table.s.t`.
pub fn first_segment(address: &str) -> Option<&str> {
    let mut parts = address.splitn(3, '.');
    parts.next()?;
    let first = parts.next()?;
    parts.next()?;
    Some(first)
}

/// Every resource kind, by type name.
pub fn kind(name: &str) -> Option<&'static dyn ResourceKind> {
    ALL.iter().copied().find(|k| k.name() == name)
}

/// Every registered kind.
pub static ALL: &[&dyn ResourceKind] = &[
    &crate::postgres::Schema,
    &crate::postgres::Table,
    &crate::postgres::View,
    &crate::postgres::Role,
    &crate::postgres::Grant,
    &crate::debezium::Publication,
    &crate::debezium::Slot,
    &crate::debezium::Source,
    &crate::debezium::Sink,
    &crate::kafka_connect::Connector,
    &crate::s3::Bucket,
    &crate::scheduler::Job,
];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diff_reports_nested_paths_and_decides_the_action() {
        let prior = json!({"name": "a", "config": {"x": 1, "y": 2}});
        let same = diff_attributes(&prior, &prior, &["name"], &[]);
        assert_eq!(same.action, Action::NoOp);
        let desired = json!({"name": "a", "config": {"x": 1, "z": 3}});
        let planned = diff_attributes(&desired, &prior, &["name"], &[]);
        assert_eq!(planned.action, Action::Update);
        let paths: Vec<&str> = planned.changes.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, ["config.y", "config.z"]);
        let renamed = json!({"name": "b", "config": {"x": 1, "y": 2}});
        assert_eq!(
            diff_attributes(&renamed, &prior, &["name"], &[]).action,
            Action::Replace
        );
    }

    #[test]
    fn every_kind_is_registered_once() {
        let mut names: Vec<&str> = ALL.iter().map(|k| k.name()).collect();
        names.sort();
        let count = names.len();
        names.dedup();
        assert_eq!(names.len(), count);
        assert!(kind("postgres_table").unwrap().protected());
        assert!(!kind("postgres_view").unwrap().protected());
    }
}
