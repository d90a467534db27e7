//! `ds check`: judging a change of the model, from a base revision to a head, the way a pull request is
//! judged. Three rules (model-language.md "Ownership" and "Backwards compatibility"):
//!
//! - **ownership**: both models are split into ownership regions (the ecosystem block, each platform and
//!   assignment: the ecosystem's repo; each zone: its declaration's repo; each team: its declaration's repo).
//!   Every region that differs must be owned by the actor, the repo and branch the change comes from.
//!   Owners are read from the base where the region's declaration exists there (a change cannot hand
//!   itself a region), else from the head: so a parent declaring a zone or team changes only its own region,
//!   and the child's first definition is then the child's to make.
//! - **compatibility**: what consumers rely on may only widen: no dataset disappears unless it was
//!   deprecated and nothing consumes it; columns stay, keys and partitions stay, nullable stays nullable,
//!   classifications stay, types only widen; new columns are nullable. New datasets and stores are free.
//! - **consumers**: a change may not leave a sink pointing at nothing.
//!
//! Everything here compares two lowered models; reading them (from git) and rendering is the CLI's.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

use crate::diag::Span;
use crate::model::{Dataset, Datastore, Model, Repo, Team};
use crate::validate::Index;

/// Who makes a change: a repository (`owner/name`) and a branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// `owner/name`.
    pub repo: String,
    /// The branch.
    pub branch: String,
}

impl Actor {
    /// Parses `owner/name@branch`.
    pub fn parse(text: &str) -> Result<Actor, String> {
        let bad = || {
            format!(
                "actor `{text}` is not `owner/name@branch` (the repository and branch the change comes from, \
                 e.g. acme/shop-model@feature-x)"
            )
        };
        let (repo, branch) = text.split_once('@').ok_or_else(bad)?;
        let (owner, name) = repo.split_once('/').ok_or_else(bad)?;
        let fine = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        if !fine(owner) || !fine(name) || branch.is_empty() || branch.contains(char::is_whitespace)
        {
            return Err(bad());
        }
        Ok(Actor {
            repo: repo.to_string(),
            branch: branch.to_string(),
        })
    }

    /// Whether this actor is `owner` (repositories compare case-insensitively, as GitHub's do).
    fn is(&self, owner: &Repo) -> bool {
        self.repo.eq_ignore_ascii_case(&owner.repo.value) && self.branch == owner.branch.value
    }
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.repo, self.branch)
    }
}

/// Which rule a finding breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rule {
    /// A region changed by someone who does not own it.
    Ownership,
    /// A change consumers cannot absorb.
    Compatibility,
    /// A sink left pointing at nothing.
    Consumers,
}

impl Rule {
    /// Its name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Ownership => "ownership",
            Rule::Compatibility => "compatibility",
            Rule::Consumers => "consumers",
        }
    }
}

/// Which model a finding's place is in: the head, or the base (for what the head removed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Side {
    /// The base model.
    Base,
    /// The head model.
    Head,
}

/// Why a change is refused, in one place.
#[derive(Debug, Clone)]
pub struct Finding {
    /// The rule.
    pub rule: Rule,
    /// The object, e.g. `column product_db.products.price`.
    pub object: String,
    /// The ownership region it is in, e.g. `team retail/shop`.
    pub region: String,
    /// The region's owner (`owner/name@branch`), when it has one.
    pub owner: Option<String>,
    /// What is wrong.
    pub message: String,
    /// What would make it acceptable.
    pub fix: String,
    /// Which model `span` is in.
    pub side: Side,
    /// Where.
    pub span: Span,
}

/// A region that differs between base and head.
#[derive(Debug, Clone)]
pub struct ChangedRegion {
    /// E.g. `team retail/shop`.
    pub region: String,
    /// `added`, `changed` or `removed`.
    pub how: &'static str,
    /// Its owner, when known.
    pub owner: Option<String>,
    /// Where it is (head; base when removed).
    pub side: Side,
    /// Its block.
    pub span: Span,
}

/// The verdict on a change.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    /// The regions that differ, in order.
    pub changed: Vec<ChangedRegion>,
    /// Why the change is refused; empty: allowed.
    pub findings: Vec<Finding>,
    /// Whether ownership was judged (an actor was given).
    pub ownership_judged: bool,
}

impl Verdict {
    /// Whether the change may be merged.
    pub fn allowed(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Judges the change from `base` to `head`, made by `actor` (ownership is not judged without one).
pub fn judge(base: &Model, head: &Model, actor: Option<&Actor>) -> Verdict {
    let base_regions = regions(base, base, head);
    let head_regions = regions(head, base, head);
    let mut verdict = Verdict {
        ownership_judged: actor.is_some(),
        ..Verdict::default()
    };
    let keys: BTreeSet<&String> = base_regions.keys().chain(head_regions.keys()).collect();
    for key in keys {
        let (how, region, side) = match (base_regions.get(key), head_regions.get(key)) {
            (Some(b), Some(h)) if b.fingerprint == h.fingerprint => continue,
            (Some(_), Some(h)) => ("changed", h, Side::Head),
            (None, Some(h)) => ("added", h, Side::Head),
            (Some(b), None) => ("removed", b, Side::Base),
            (None, None) => continue,
        };
        verdict.changed.push(ChangedRegion {
            region: key.clone(),
            how,
            owner: region.owner.map(Repo::to_string),
            side,
            span: region.span.clone(),
        });
        if let Some(actor) = actor {
            let owned = region.owner.is_some_and(|owner| actor.is(owner));
            // In a team, name what changed (a store, a dataset, a workspace), where it is.
            let mut objects = match (base_regions.get(key), head_regions.get(key)) {
                (Some(b), Some(h)) => changed_objects(b, h),
                _ => Vec::new(),
            };
            if objects.is_empty() {
                objects.push((key.clone(), side, region.span.clone()));
            }
            for (object, side, span) in objects.into_iter().filter(|_| !owned) {
                verdict.findings.push(Finding {
                    rule: Rule::Ownership,
                    object: object.clone(),
                    region: key.clone(),
                    owner: region.owner.map(Repo::to_string),
                    message: match (region.owner, &object == key) {
                        (Some(owner), true) => format!(
                            "{key} was {how} by {actor}, but it is owned by {}",
                            owner
                        ),
                        (Some(owner), false) => format!(
                            "{object} (in {key}) was changed by {actor}, but {key} is owned by {}",
                            owner
                        ),
                        (None, _) => {
                            format!("{key} was {how} by {actor}, but it has no owner declared")
                        }
                    },
                    fix: match region.owner {
                        Some(owner) => format!(
                            "make this change from {} (its owner), or leave {key} unchanged here",
                            owner
                        ),
                        None => "declare its owner first (a zone_declaration or team_declaration with owning_repo)"
                            .to_string(),
                    },
                    side,
                    span,
                });
            }
        }
    }
    compatibility(base, head, &mut verdict.findings);
    consumers(base, head, &mut verdict.findings);
    verdict
}

/// One ownership region of a model.
struct Region<'m> {
    /// What the region holds, without places: equal fingerprints, equal regions.
    fingerprint: u64,
    owner: Option<&'m Repo>,
    span: Span,
    /// A team's objects: name (`datastore x`, `dataset x.y`, `workspace w`), fingerprint and place.
    objects: BTreeMap<String, (u64, Span)>,
}

/// The objects that differ between two versions of a region: changed and added ones where they are in the
/// head, removed ones where they were in the base.
fn changed_objects(base: &Region<'_>, head: &Region<'_>) -> Vec<(String, Side, Span)> {
    let names: BTreeSet<&String> = base.objects.keys().chain(head.objects.keys()).collect();
    names
        .into_iter()
        .filter_map(
            |name| match (base.objects.get(name), head.objects.get(name)) {
                (Some(b), Some(h)) if b.0 == h.0 => None,
                (_, Some(h)) => Some((name.clone(), Side::Head, h.1.clone())),
                (Some(b), None) => Some((name.clone(), Side::Base, b.1.clone())),
                (None, None) => None,
            },
        )
        .collect()
}

/// A team's objects for [`Region::objects`]: each store (its own settings) and dataset, each workspace.
fn team_objects(team: &Team) -> BTreeMap<String, (u64, Span)> {
    let mut out = BTreeMap::new();
    for store in &team.datastores {
        // The store's own settings: everything but its datasets (destructured, so that a field added to
        // `Datastore` cannot be left out unnoticed).
        let Datastore {
            name,
            production_status,
            deprecated,
            documentation,
            captures,
            datasets: _,
            span: _,
        } = store;
        let settings = (name, production_status, deprecated, documentation, captures);
        out.insert(
            format!("datastore {}", store.name.value),
            (fingerprint(&settings), store.span.clone()),
        );
        for dataset in &store.datasets {
            out.insert(
                format!("dataset {}.{}", store.name.value, dataset.name.value),
                (fingerprint(dataset), dataset.span.clone()),
            );
        }
    }
    for ws in &team.workspaces {
        out.insert(
            format!("workspace {}", ws.name.value),
            (fingerprint(ws), ws.span.clone()),
        );
    }
    out
}

/// The ownership regions of `model` (one of `base`, `head`), by name; owners are looked up in the base
/// first.
fn regions<'m>(model: &'m Model, base: &'m Model, head: &'m Model) -> BTreeMap<String, Region<'m>> {
    let mut out = BTreeMap::new();
    let ecosystem_owner = |m: &'m Model| m.ecosystems.first().and_then(|e| e.owning_repo.as_ref());
    let eco_owner = ecosystem_owner(base).or_else(|| ecosystem_owner(head));
    if let Some(eco) = model.ecosystems.first() {
        out.insert(
            "ecosystem".to_string(),
            Region {
                fingerprint: fingerprint(eco),
                owner: eco_owner,
                span: eco.span.clone(),
                objects: BTreeMap::new(),
            },
        );
    }
    for platform in &model.platforms {
        out.insert(
            format!("platform {}", platform.name.key()),
            Region {
                fingerprint: fingerprint(platform),
                owner: eco_owner,
                span: platform.span.clone(),
                objects: BTreeMap::new(),
            },
        );
    }
    for assignment in &model.assignments {
        out.insert(
            format!(
                "assignment {}/{}",
                assignment.workspace.key(),
                assignment.group.key()
            ),
            Region {
                fingerprint: fingerprint(assignment),
                owner: eco_owner,
                span: assignment.span.clone(),
                objects: BTreeMap::new(),
            },
        );
    }
    for zone in &model.zones {
        out.insert(
            format!("zone {}", zone.name.key()),
            Region {
                fingerprint: fingerprint(zone),
                owner: base
                    .zone_owner(&zone.name.value)
                    .or_else(|| head.zone_owner(&zone.name.value)),
                span: zone.span.clone(),
                objects: BTreeMap::new(),
            },
        );
    }
    for team in &model.teams {
        // The team's own fields, then its objects' fingerprints: each object is formatted once.
        let objects = team_objects(team);
        let Team {
            zone,
            name,
            documentation,
            datastores: _,
            workspaces: _,
            span: _,
        } = team;
        let own = (zone, name, documentation);
        let all: Vec<(&String, u64)> = objects.iter().map(|(k, (f, _))| (k, *f)).collect();
        out.insert(
            team_region(team),
            Region {
                fingerprint: fingerprint(&(own, all)),
                owner: team_owner(base, team).or_else(|| team_owner(head, team)),
                span: team.span.clone(),
                objects,
            },
        );
    }
    out
}

/// `team <zone>/<team>`.
fn team_region(team: &Team) -> String {
    format!("team {}/{}", team.zone.key(), team.name.key())
}

/// The repo that owns `team` according to `model`'s declarations.
fn team_owner<'m>(model: &'m Model, team: &Team) -> Option<&'m Repo> {
    model.team_owner(&team.zone.value, &team.name.value)
}

/// A value's content without its places: a hash of its `Debug` form with spans hidden (file ids and offsets
/// differ between revisions even where nothing changed), streamed into the hasher, never held as text.
fn fingerprint(value: &impl Debug) -> u64 {
    struct Hashing(std::hash::DefaultHasher);
    impl std::fmt::Write for Hashing {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            std::hash::Hasher::write(&mut self.0, s.as_bytes());
            Ok(())
        }
    }
    let mut out = Hashing(std::hash::DefaultHasher::new());
    crate::diag::SPANS_HIDDEN.with(|hidden| hidden.set(true));
    let _ = std::fmt::Write::write_fmt(&mut out, format_args!("{value:?}"));
    crate::diag::SPANS_HIDDEN.with(|hidden| hidden.set(false));
    std::hash::Hasher::finish(&out.0)
}

/// Where a store is defined: its team (region and owner).
struct StoreAt<'m> {
    store: &'m Datastore,
    team: &'m Team,
}

fn stores(model: &Model) -> BTreeMap<String, StoreAt<'_>> {
    let index = Index::build(model);
    index
        .stores
        .iter()
        .filter_map(|(name, defs)| {
            let first = defs.first()?;
            Some((
                name.clone(),
                StoreAt {
                    store: first.store,
                    team: first.team,
                },
            ))
        })
        .collect()
}

/// The workspaces of `model` that sink `store`.`dataset`: (workspace, team, the sink's place).
fn sinks_of<'m>(model: &'m Model, store: &str, dataset: &str) -> Vec<(&'m str, &'m Team, Span)> {
    let mut out = Vec::new();
    for team in &model.teams {
        for ws in &team.workspaces {
            for group in &ws.groups {
                for sink in &group.sinks {
                    if sink.store.key() == store && sink.dataset.key() == dataset {
                        out.push((ws.name.as_str(), team, sink.span.clone()));
                    }
                }
            }
        }
    }
    out
}

fn compatibility(base: &Model, head: &Model, findings: &mut Vec<Finding>) {
    let head_stores = stores(head);
    for (name, at) in stores(base) {
        let head_store = head_stores.get(&name);
        for dataset in &at.store.datasets {
            let object = format!("dataset {}.{}", at.store.name.value, dataset.name.value);
            let found = |rule, message: String, fix: &str, side, span: Span, team: &Team| Finding {
                rule,
                object: object.clone(),
                region: team_region(team),
                owner: team_owner(base, team)
                    .or_else(|| team_owner(head, team))
                    .map(Repo::to_string),
                message,
                fix: fix.to_string(),
                side,
                span,
            };
            let Some(now) = head_store.and_then(|h| {
                h.store
                    .datasets
                    .iter()
                    .find(|d| d.name.key() == dataset.name.key())
                    .map(|d| (d, h.team))
            }) else {
                // Removed (or its store was). Consumers of it are reported as such.
                if !dataset.deprecated {
                    findings.push(found(
                        Rule::Compatibility,
                        format!(
                            "{object} was removed{} without being deprecated first",
                            if head_store.is_none() { " with its store" } else { "" }
                        ),
                        "deprecate it first (`deprecated = true`), wait until no workspace consumes it, then \
                         remove it",
                        Side::Base,
                        dataset.span.clone(),
                        at.team,
                    ));
                }
                continue;
            };
            let (now, team) = now;
            table_changes(&object, dataset, now, &mut |message, fix, span| {
                findings.push(found(
                    Rule::Compatibility,
                    message,
                    fix,
                    Side::Head,
                    span,
                    team,
                ))
            });
        }
    }
}

/// Reports (message, fix, place in head) each incompatible change from `old` to `new`.
fn table_changes(
    object: &str,
    old: &Dataset,
    new: &Dataset,
    report: &mut dyn FnMut(String, &str, Span),
) {
    let lower = |v: Vec<&str>| v.iter().map(|s| s.to_ascii_lowercase()).collect::<Vec<_>>();
    let (Some(old_table), Some(new_table)) = (&old.table, &new.table) else {
        return;
    };
    if lower(old.primary_key()) != lower(new.primary_key()) {
        report(
            format!(
                "{object}: the primary key changed from ({}) to ({})",
                old.primary_key().join(", "),
                new.primary_key().join(", ")
            ),
            "keep the primary key; a different key is a new dataset (add one, deprecate this one)",
            new_table
                .primary_key_span
                .clone()
                .unwrap_or_else(|| new_table.span.clone()),
        );
    }
    let partitions = |t: &crate::model::Table| {
        t.partition_key
            .iter()
            .flatten()
            .map(|p| p.value.to_ascii_lowercase())
            .collect::<Vec<_>>()
    };
    if partitions(old_table) != partitions(new_table) {
        report(
            format!(
                "{object}: the partition key changed from ({}) to ({})",
                partitions(old_table).join(", "),
                partitions(new_table).join(", ")
            ),
            "keep the partition key; a different one is a new dataset",
            new_table.span.clone(),
        );
    }
    let classes = |list: &[crate::model::Spanned<crate::model::Classification>]| {
        list.iter()
            .map(|c| c.value.to_string())
            .collect::<BTreeSet<_>>()
    };
    let lost: Vec<String> = classes(&old.classifications)
        .difference(&classes(&new.classifications))
        .cloned()
        .collect();
    if !lost.is_empty() {
        report(
            format!("{object} lost the classification {}", lost.join(", ")),
            "keep every classification (add more if needed): consumers' policies were judged on them",
            new.classifications_span
                .clone()
                .unwrap_or_else(|| new.span.clone()),
        );
    }
    for column in &old_table.columns {
        let name = format!("{object}.{}", column.name.value).replacen("dataset ", "column ", 1);
        let Some(now) = new_table.column(&column.name.value) else {
            report(
                format!("{name} was removed"),
                "keep the column (consumers read it); stop filling it if it is no longer known",
                new_table.span.clone(),
            );
            continue;
        };
        if column.nullable && !now.nullable {
            report(
                format!("{name} became non-nullable"),
                "keep it nullable: consumers hold rows where it is NULL",
                now.nullable_span
                    .clone()
                    .unwrap_or_else(|| now.name.span.clone()),
            );
        }
        if let (Some(old_ty), Some(new_ty)) = (&column.ty, &now.ty)
            && !old_ty.value.widens_to(&new_ty.value)
        {
            report(
                format!(
                    "{name}: {} → {} is not a widening",
                    old_ty.value, new_ty.value
                ),
                "a type may only widen (smallint → integer → bigint, real → double, varchar(n) → varchar(m ≥ n) or \
                 text, decimal with as many integer digits and scale or more, date → timestamp); for anything \
                 else add a new column",
                new_ty.span.clone(),
            );
        }
        let lost: Vec<String> = classes(&column.classifications)
            .difference(&classes(&now.classifications))
            .cloned()
            .collect();
        if !lost.is_empty() {
            report(
                format!("{name} lost the classification {}", lost.join(", ")),
                "keep every classification (add more if needed): consumers' policies were judged on them",
                now.name.span.clone(),
            );
        }
    }
    for column in &new_table.columns {
        if old_table.column(&column.name.value).is_none() && !column.nullable {
            report(
                format!(
                    "{}.{} is new and not nullable",
                    object.replacen("dataset ", "column ", 1),
                    column.name.value
                ),
                "make a new column nullable: the rows already merged have no value for it",
                column.name.span.clone(),
            );
        }
    }
}

/// A sink in head whose dataset existed in the base and is gone (or is deprecated-and-removed) in head.
fn consumers(base: &Model, head: &Model, findings: &mut Vec<Finding>) {
    let base_stores = stores(base);
    let head_stores = stores(head);
    for (name, at) in &base_stores {
        for dataset in &at.store.datasets {
            let still = head_stores.get(name).is_some_and(|h| {
                h.store
                    .datasets
                    .iter()
                    .any(|d| d.name.key() == dataset.name.key())
            });
            if still {
                continue;
            }
            for (workspace, team, span) in sinks_of(head, name, &dataset.name.key()) {
                findings.push(Finding {
                    rule: Rule::Consumers,
                    object: format!("dataset {}.{}", at.store.name.value, dataset.name.value),
                    region: team_region(team),
                    owner: team_owner(base, team)
                        .or_else(|| team_owner(head, team))
                        .map(Repo::to_string),
                    message: format!(
                        "workspace {workspace} still consumes {}.{}, which this change removes",
                        at.store.name.value, dataset.name.value
                    ),
                    fix: format!(
                        "keep the dataset until workspace {workspace} has removed its sink (a change of its own \
                         team), then remove it"
                    ),
                    side: Side::Head,
                    span,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actors_parse_strictly() {
        let actor = Actor::parse("acme/shop-model@feature/x").unwrap();
        assert_eq!(actor.repo, "acme/shop-model");
        assert_eq!(actor.branch, "feature/x");
        for bad in [
            "acme@main",
            "acme/shop",
            "/shop@main",
            "acme/@main",
            "acme/shop@",
            "a b/c@d",
        ] {
            assert!(Actor::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fingerprints_ignore_places() {
        let a = Span::new(crate::source::FileId(0), 1..5);
        let b = Span::new(crate::source::FileId(3), 10..50);
        let x = crate::model::Spanned::new("same".to_string(), a);
        let y = crate::model::Spanned::new("same".to_string(), b.clone());
        let z = crate::model::Spanned::new("other".to_string(), b);
        assert_eq!(fingerprint(&x), fingerprint(&y));
        assert_ne!(fingerprint(&x), fingerprint(&z));
        // Spans print again afterwards.
        assert!(format!("{x:?}").contains("FileId(0)"));
    }
}
