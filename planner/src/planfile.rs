//! The plan document: what `ds plan --format json` prints, what `ds plan --out FILE` saves and `ds show
//! FILE` reads back. Its schema is `docs/plan-format.md`; these types are that schema, kept apart from the
//! in-memory [`Plan`] so that refactoring the planner never changes the file format by accident.

use std::collections::BTreeMap;

use providers::Action;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::plan::Plan;

/// The plan document's format version.
pub const FORMAT_VERSION: u32 = 1;

/// What a plan was made from; `ds apply PLANFILE` refuses the plan when any of them changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bindings {
    /// The state's lineage (`None`: there was no state yet).
    pub lineage: Option<String>,
    /// The state's serial (0 when there was no state).
    pub serial: u64,
    /// `sha256:<hex>` of the model files (names and contents).
    pub model_hash: String,
}

/// Counts by action.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Creates.
    pub create: usize,
    /// Updates in place.
    pub update: usize,
    /// Replaces.
    pub replace: usize,
    /// Deletes.
    pub delete: usize,
    /// Resources left alone.
    pub no_op: usize,
}

/// One attribute difference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttributeDiff {
    /// Dotted path into the attributes.
    pub path: String,
    /// The recorded value (absent: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    /// The desired value (absent: removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
    /// Whether this difference forces a replace.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forces_replace: bool,
    /// Whether the values are secret-derived (they are then never written, only marked).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sensitive: bool,
}

/// One resource's change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// `type.name`.
    pub address: String,
    /// The resource type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The provider.
    pub provider: String,
    /// `create`, `update`, `replace` or `delete`.
    pub action: String,
    /// Why.
    pub reason: String,
    /// Whether the resource holds data.
    pub protected: bool,
    /// Addresses it depends on.
    pub dependencies: Vec<String>,
    /// The attributes that differ.
    pub attributes: Vec<AttributeDiff>,
    /// The recorded attributes (null for a create).
    pub before: Option<Value>,
    /// The desired attributes (null for a delete).
    pub after: Option<Value>,
}

/// A resource that differs from its record: changed outside `ds`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftEntry {
    /// `type.name`.
    pub address: String,
    /// The resource type.
    #[serde(rename = "type")]
    pub kind: String,
    /// `changed` or `deleted`.
    pub what: String,
    /// The attributes that differ: `before` is the record, `after` what the real system has.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<AttributeDiff>,
}

/// The whole document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanFile {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// What it binds to.
    pub bindings: Bindings,
    /// Whether reality was read before planning.
    pub refreshed: bool,
    /// Counts by action.
    pub summary: Summary,
    /// Protected resources the plan would destroy without consent (a plan with any cannot be applied).
    pub refused: Vec<String>,
    /// Every change that does something, in address order.
    pub changes: Vec<Change>,
    /// What the refresh found changed outside `ds`, in address order (empty without a refresh).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<DriftEntry>,
    /// What the refresh found about the resources' health (a connector's failed task, a slot's retained
    /// WAL), in address order (empty without a refresh).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health: Vec<providers::live::Health>,
}

impl PlanFile {
    /// The document of a plan (which it takes apart: attributes move, they are not copied).
    pub fn new(plan: Plan, bindings: Bindings) -> PlanFile {
        let summary = Summary {
            create: plan.count(Action::Create),
            update: plan.count(Action::Update),
            replace: plan.count(Action::Replace),
            delete: plan.count(Action::Delete),
            no_op: plan.count(Action::NoOp),
        };
        let changes = plan
            .changes
            .into_iter()
            .map(|c| Change {
                address: c.address,
                kind: c.kind.to_string(),
                provider: c.provider.to_string(),
                action: c.action.as_str().to_string(),
                reason: c.reason,
                protected: c.protected,
                dependencies: c.dependencies,
                attributes: c
                    .attributes
                    .into_iter()
                    .map(|a| AttributeDiff {
                        path: a.path,
                        before: if a.sensitive { None } else { a.before },
                        after: if a.sensitive { None } else { a.after },
                        forces_replace: a.forces_replace,
                        sensitive: a.sensitive,
                    })
                    .collect(),
                before: c.before,
                after: c.after,
            })
            .collect();
        PlanFile {
            format_version: FORMAT_VERSION,
            bindings,
            refreshed: plan.refreshed,
            summary,
            refused: plan.refused,
            changes,
            drift: Vec::new(),
            health: Vec::new(),
        }
    }

    /// Records what a refresh found.
    pub fn set_drift(&mut self, drift: Vec<crate::refresh::Drift>) {
        self.refreshed = true;
        self.drift = drift
            .into_iter()
            .map(|d| DriftEntry {
                address: d.address,
                kind: d.kind,
                what: d.what.to_string(),
                attributes: d
                    .attributes
                    .into_iter()
                    .map(|a| AttributeDiff {
                        path: a.path,
                        before: if a.sensitive { None } else { a.before },
                        after: if a.sensitive { None } else { a.after },
                        forces_replace: false,
                        sensitive: a.sensitive,
                    })
                    .collect(),
            })
            .collect();
        self.drift.sort_by(|a, b| a.address.cmp(&b.address));
        // The changes that repair drift say so.
        for change in &mut self.changes {
            if let Ok(i) = self
                .drift
                .binary_search_by(|d| d.address.as_str().cmp(change.address.as_str()))
            {
                change.reason = match (self.drift[i].what.as_str(), change.action.as_str()) {
                    ("deleted", "create") => "deleted outside ds: create it again".into(),
                    (_, "update") => "changed outside ds: put it back".into(),
                    (what, _) => format!("{what} outside ds; {}", change.reason),
                };
            }
        }
    }

    /// Whether it changes anything.
    pub fn has_changes(&self) -> bool {
        !self.changes.is_empty()
    }

    /// The changes grouped by provider, then type, in order.
    pub fn grouped(&self) -> BTreeMap<(&str, &str), Vec<&Change>> {
        let mut groups: BTreeMap<(&str, &str), Vec<&Change>> = BTreeMap::new();
        for change in &self.changes {
            groups
                .entry((change.provider.as_str(), change.kind.as_str()))
                .or_default()
                .push(change);
        }
        groups
    }
}

/// Why a plan file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PlanFileError {
    /// Not a plan document.
    #[error("`{path}` is not a ds plan file: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Written by a newer ds.
    #[error(
        "`{path}` is a plan of format {found}, newer than this ds reads ({FORMAT_VERSION}): upgrade ds"
    )]
    Newer {
        /// The file.
        path: String,
        /// Its format version.
        found: u32,
    },
}

/// Reads a plan document.
pub fn parse(text: &str, path: &str) -> Result<PlanFile, PlanFileError> {
    let value: Value = serde_json::from_str(text).map_err(|e| PlanFileError::Invalid {
        path: path.to_string(),
        reason: e.to_string(),
    })?;
    let version = value
        .get("format_version")
        .and_then(Value::as_u64)
        .ok_or_else(|| PlanFileError::Invalid {
            path: path.to_string(),
            reason: "it has no `format_version`".into(),
        })?;
    if version > u64::from(FORMAT_VERSION) {
        return Err(PlanFileError::Newer {
            path: path.to_string(),
            found: version as u32,
        });
    }
    serde_json::from_value(value).map_err(|e| PlanFileError::Invalid {
        path: path.to_string(),
        reason: e.to_string(),
    })
}

/// `sha256:<hex>` of model sources: each file's name and text, in order.
pub fn model_hash(sources: &crate::source::Sources) -> String {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    for (_, file) in sources.iter() {
        hasher.update((file.name.len() as u64).to_le_bytes());
        hasher.update(file.name.as_bytes());
        hasher.update((file.text.len() as u64).to_le_bytes());
        hasher.update(file.text.as_bytes());
    }
    let digest = hasher.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}
