//! Diff: desired resources (the compiled graph) against recorded state give a [`Plan`].
//!
//! Pure: the state is passed in (read, and refreshed when providers can read, by the caller). Per resource
//! the kind decides between no-op, update in place and replace; resources only in state are deleted.
//! Destroying a protected (data-bearing) resource is refused unless the user allows it for that address.

use std::collections::{BTreeSet, HashSet};

use petgraph::Direction;
use providers::{Action, AttributeChange, kind};
use serde_json::Value;

use crate::compile::Graph;

/// What the user asked of the plan.
#[derive(Debug, Default, Clone)]
pub struct Options {
    /// Only these addresses (and prefixes), with what they depend on.
    pub targets: Vec<String>,
    /// Not these addresses (and prefixes), nor what depends on them.
    pub excludes: Vec<String>,
    /// Replace these even if unchanged.
    pub replace: Vec<String>,
    /// Protected resources the user allows to be deleted or replaced.
    pub allow_destroy: Vec<String>,
}

/// One resource's planned change.
#[derive(Debug, Clone)]
pub struct ResourceChange {
    /// `type.name`.
    pub address: String,
    /// The resource type.
    pub kind: &'static str,
    /// The provider.
    pub provider: &'static str,
    /// What happens (never `NoOp`: unchanged resources are only counted).
    pub action: Action,
    /// Why, in a short phrase.
    pub reason: String,
    /// The attributes that differ (for updates and replaces; creates and deletes have `after`/`before`).
    pub attributes: Vec<AttributeChange>,
    /// Whether the resource holds data.
    pub protected: bool,
    /// The desired attributes (none for a delete).
    pub after: Option<Value>,
    /// The recorded attributes (none for a create).
    pub before: Option<Value>,
    /// Dependencies of the desired resource (or of the recorded one, for a delete).
    pub dependencies: Vec<String>,
}

/// A plan: every change, in address order, and how many resources are left alone.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Every resource that changes, in address order.
    pub changes: Vec<ResourceChange>,
    /// Resources of the plan's scope that need nothing.
    pub unchanged: usize,
    /// Protected resources the plan would delete or replace without the user's consent.
    pub refused: Vec<String>,
    /// Whether reality was read before planning.
    pub refreshed: bool,
}

impl Plan {
    /// The changes that do something.
    pub fn actions(&self) -> impl Iterator<Item = &ResourceChange> {
        self.changes.iter()
    }

    /// How many changes of each action.
    pub fn count(&self, action: Action) -> usize {
        if action == Action::NoOp {
            return self.unchanged;
        }
        self.changes.iter().filter(|c| c.action == action).count()
    }

    /// Whether the plan changes anything.
    pub fn has_changes(&self) -> bool {
        !self.changes.is_empty()
    }
}

/// Why a plan could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// `--target`, `--exclude`, `--replace` or `--allow-destroy` names nothing.
    #[error("{flag} `{address}` matches no resource of the model or the state{}", suggestions(.closest))]
    UnknownAddress {
        /// The flag.
        flag: &'static str,
        /// What was given.
        address: String,
        /// The closest addresses.
        closest: Vec<String>,
    },
    /// A resource type the state holds that this ds does not know.
    #[error(
        "the state holds `{address}` of type `{kind}`, which this ds does not know: upgrade ds"
    )]
    UnknownKind {
        /// The resource.
        address: String,
        /// Its type.
        kind: String,
    },
}

fn suggestions(closest: &[String]) -> String {
    if closest.is_empty() {
        String::new()
    } else {
        format!(
            "; the closest are {}",
            closest
                .iter()
                .map(|a| format!("`{a}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// Whether `address` is `pattern` or lies under it (`postgres_table.zero_live` covers its tables).
pub fn matches(address: &str, pattern: &str) -> bool {
    address == pattern
        || (address.starts_with(pattern) && address.as_bytes().get(pattern.len()) == Some(&b'.'))
}

/// The addresses closest to `word`, at most three, closest first.
pub fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut scored: Vec<(usize, &str)> = candidates
        .map(|c| (crate::names::edit_distance(word, c), c))
        .collect();
    scored.sort();
    scored.truncate(3);
    scored.into_iter().map(|(_, c)| c.to_string()).collect()
}

/// Diffs the compiled model against the state. Desired attributes of changing resources are taken out
/// of the graph and moved into the plan rather than copied (a first plan of a large model holds every
/// resource's attributes); unchanged resources keep theirs.
pub fn plan(graph: &mut Graph, prior: &state::State, options: &Options) -> Result<Plan, PlanError> {
    let known = |address: &str| graph.get(address).is_some() || prior.resource(address).is_some();
    let all_addresses = || {
        graph
            .nodes
            .keys()
            .map(String::as_str)
            .chain(prior.resources.iter().map(|r| r.address.as_str()))
    };
    for (flag, list) in [
        ("--target", &options.targets),
        ("--exclude", &options.excludes),
        ("--replace", &options.replace),
        ("--allow-destroy", &options.allow_destroy),
    ] {
        for pattern in list {
            if !known(pattern) && !all_addresses().any(|a| matches(a, pattern)) {
                return Err(PlanError::UnknownAddress {
                    flag,
                    address: pattern.clone(),
                    closest: closest(pattern, all_addresses()),
                });
            }
        }
    }

    // `None`: everything (the common case, kept free of a set of every address).
    let selected: Option<HashSet<String>> =
        (!options.targets.is_empty() || !options.excludes.is_empty()).then(|| {
            selection(graph, prior, options)
                .into_iter()
                .map(str::to_string)
                .collect()
        });
    let is_selected = |address: &str| selected.as_ref().is_none_or(|s| s.contains(address));
    let mut changes: Vec<ResourceChange> = Vec::new();
    let mut unchanged = 0;
    // Both sides are in address order: walk the state alongside the graph instead of searching it.
    let mut recorded_iter = prior.resources.iter().peekable();
    let nodes: Vec<petgraph::graph::NodeIndex> = graph.nodes.values().copied().collect();
    for node in nodes {
        let resource = &mut graph.graph[node];
        while recorded_iter
            .peek()
            .is_some_and(|r| r.address < resource.address)
        {
            recorded_iter.next();
        }
        let recorded = recorded_iter
            .peek()
            .filter(|r| r.address == resource.address)
            .copied();
        if !is_selected(&resource.address) {
            continue;
        }
        let kind = resource.kind;
        let forced = !options.replace.is_empty()
            && options
                .replace
                .iter()
                .any(|p| matches(&resource.address, p));
        let Some(recorded) = recorded else {
            changes.push(ResourceChange {
                address: resource.address.clone(),
                kind: kind.name(),
                provider: kind.provider(),
                action: Action::Create,
                reason: "not in the state".into(),
                attributes: Vec::new(),
                protected: kind.protected(),
                after: Some(std::mem::take(&mut resource.attributes)),
                before: None,
                dependencies: resource.dependencies.clone(),
            });
            continue;
        };
        // Equal attributes are a no-op whatever the kind: skip its finer comparison.
        if !forced && resource.attributes == recorded.attributes {
            unchanged += 1;
            continue;
        }
        let planned = kind.plan(&resource.attributes, &recorded.attributes);
        let (action, reason) = if forced {
            (
                Action::Replace,
                "replace requested with --replace".to_string(),
            )
        } else {
            match planned.action {
                Action::Replace => {
                    let why: Vec<&str> = planned
                        .changes
                        .iter()
                        .filter(|c| c.forces_replace)
                        .map(|c| c.path.as_str())
                        .collect();
                    (
                        Action::Replace,
                        format!("cannot change in place: {}", why.join(", ")),
                    )
                }
                Action::Update => (Action::Update, "changed in the model".to_string()),
                _ => {
                    unchanged += 1;
                    continue;
                }
            }
        };
        changes.push(ResourceChange {
            address: resource.address.clone(),
            kind: kind.name(),
            provider: kind.provider(),
            action,
            reason,
            attributes: planned.changes,
            protected: kind.protected(),
            after: Some(std::mem::take(&mut resource.attributes)),
            before: Some(recorded.attributes.clone()),
            dependencies: resource.dependencies.clone(),
        });
    }
    let mut deleted = false;
    for recorded in &prior.resources {
        if graph.get(&recorded.address).is_some() || !is_selected(&recorded.address) {
            continue;
        }
        let Some(kind) = kind(&recorded.kind) else {
            return Err(PlanError::UnknownKind {
                address: recorded.address.clone(),
                kind: recorded.kind.clone(),
            });
        };
        deleted = true;
        changes.push(ResourceChange {
            address: recorded.address.clone(),
            kind: kind.name(),
            provider: kind.provider(),
            action: Action::Delete,
            reason: "no longer in the model".into(),
            attributes: Vec::new(),
            protected: kind.protected(),
            after: None,
            before: Some(recorded.attributes.clone()),
            dependencies: recorded_dependencies(recorded),
        });
    }
    if deleted {
        changes.sort_by(|a, b| a.address.cmp(&b.address));
    }
    cascade_replacements(graph, prior, &mut changes, &mut unchanged);
    let refused = changes
        .iter()
        .filter(|c| c.protected && c.action.is_destructive())
        .filter(|c| !options.allow_destroy.iter().any(|p| matches(&c.address, p)))
        .map(|c| c.address.clone())
        .collect();
    Ok(Plan {
        changes,
        unchanged,
        refused,
        refreshed: false,
    })
}

/// Objects inside a replaced object go with it (Postgres drops them along): plan them as replaced.
fn cascade_replacements(
    graph: &mut Graph,
    prior: &state::State,
    changes: &mut Vec<ResourceChange>,
    unchanged: &mut usize,
) {
    let mut queue: Vec<String> = changes
        .iter()
        .filter(|c| c.action == Action::Replace)
        .map(|c| c.address.clone())
        .collect();
    if queue.is_empty() {
        return;
    }
    let mut added = false;
    let mut position: std::collections::HashMap<String, usize> = changes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.address.clone(), i))
        .collect();
    while let Some(address) = queue.pop() {
        let Some(&node) = graph.nodes.get(&address) else {
            continue;
        };
        let replaced_kind = graph.graph[node].kind.name();
        let dependents: Vec<petgraph::graph::NodeIndex> = graph
            .graph
            .neighbors_directed(node, Direction::Outgoing)
            .collect();
        for dependent in dependents {
            let resource = &mut graph.graph[dependent];
            // What Postgres drops along with its container: a schema's tables, views and grants, a
            // table's views, a view's grants. A table that merely comes after another is not inside it.
            let inside = matches!(
                (replaced_kind, resource.kind.name()),
                (
                    "postgres_schema",
                    "postgres_table" | "postgres_view" | "postgres_grant"
                ) | ("postgres_table", "postgres_view")
                    | ("postgres_view" | "postgres_role", "postgres_grant")
            );
            if !inside {
                continue;
            }
            let reason = format!("`{address}` is replaced");
            match position.get(&resource.address).map(|&i| &mut changes[i]) {
                Some(change) if change.action == Action::Update => {
                    change.action = Action::Replace;
                    change.reason = reason;
                    queue.push(change.address.clone());
                }
                Some(_) => {}
                None => {
                    let Some(recorded) = prior.resource(&resource.address) else {
                        continue;
                    };
                    *unchanged -= 1;
                    added = true;
                    position.insert(resource.address.clone(), changes.len());
                    changes.push(ResourceChange {
                        address: resource.address.clone(),
                        kind: resource.kind.name(),
                        provider: resource.kind.provider(),
                        action: Action::Replace,
                        reason,
                        attributes: Vec::new(),
                        protected: resource.kind.protected(),
                        after: Some(resource.attributes.clone()),
                        before: Some(recorded.attributes.clone()),
                        dependencies: resource.dependencies.clone(),
                    });
                    queue.push(resource.address.clone());
                }
            }
        }
    }
    if added {
        changes.sort_by(|a, b| a.address.cmp(&b.address));
    }
}

/// The addresses the plan covers: everything, or the targets with their dependencies, minus the excludes
/// with their dependents.
fn selection<'a>(graph: &'a Graph, prior: &'a state::State, options: &Options) -> HashSet<&'a str> {
    let all = graph
        .nodes
        .keys()
        .map(String::as_str)
        .chain(prior.resources.iter().map(|r| r.address.as_str()));
    let mut selected: HashSet<&str> = if options.targets.is_empty() {
        all.collect()
    } else {
        let mut chosen: HashSet<&str> = all
            .filter(|a| options.targets.iter().any(|p| matches(a, p)))
            .collect();
        let mut queue: Vec<&str> = chosen.iter().copied().collect();
        while let Some(address) = queue.pop() {
            let deps: Vec<String> = match graph.get(address) {
                Some(r) => r.dependencies.clone(),
                None => prior
                    .resource(address)
                    .map(recorded_dependencies)
                    .unwrap_or_default(),
            };
            for dep in deps {
                let dep = graph
                    .nodes
                    .get_key_value(&dep)
                    .map(|(k, _)| k.as_str())
                    .or_else(|| prior.resource(&dep).map(|r| r.address.as_str()));
                if let Some(dep) = dep
                    && chosen.insert(dep)
                {
                    queue.push(dep);
                }
            }
        }
        chosen
    };
    if !options.excludes.is_empty() {
        let mut excluded: BTreeSet<&str> = selected
            .iter()
            .copied()
            .filter(|a| options.excludes.iter().any(|p| matches(a, p)))
            .collect();
        let mut queue: Vec<&str> = excluded.iter().copied().collect();
        while let Some(address) = queue.pop() {
            let Some(&node) = graph.nodes.get(address) else {
                continue;
            };
            for dependent in graph.graph.neighbors_directed(node, Direction::Outgoing) {
                let dependent = graph.graph[dependent].address.as_str();
                if excluded.insert(dependent) {
                    queue.push(dependent);
                }
            }
        }
        selected.retain(|a| !excluded.contains(a));
    }
    selected
}

/// What the state records for a resource once it exists as desired (what apply writes after creating or
/// updating it).
pub fn recorded(resource: &crate::compile::Resource) -> state::ResourceState {
    record(
        &resource.address,
        resource.kind,
        resource.attributes.clone(),
        &resource.dependencies,
    )
}

/// A state entry: the dependency on the resource's container, which its address names, is not repeated.
pub fn record(
    address: &str,
    kind: &dyn providers::ResourceKind,
    attributes: Value,
    dependencies: &[String],
) -> state::ResourceState {
    let container = kind.container(address);
    state::ResourceState {
        address: address.to_string(),
        kind: kind.name().to_string(),
        provider: kind.provider().to_string(),
        schema_version: kind.schema_version(),
        attributes,
        dependencies: dependencies
            .iter()
            .filter(|d| Some(d.as_str()) != container.as_deref())
            .cloned()
            .collect(),
        secret_fingerprints: Default::default(),
    }
}

/// Every dependency of a recorded resource: the recorded ones and its container.
pub fn recorded_dependencies(resource: &state::ResourceState) -> Vec<String> {
    let mut deps = resource.dependencies.clone();
    if let Some(container) = kind(&resource.kind).and_then(|k| k.container(&resource.address))
        && !deps.contains(&container)
    {
        deps.push(container);
        deps.sort();
    }
    deps
}
