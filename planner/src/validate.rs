//! Validation: the rules of the language reference that relate objects to each other (names, references,
//! policies, data platform choice, transformers, platforms). Shape problems were found by [`crate::lower`].
//!
//! Every check runs on whatever lowered; a missing piece (a type that did not parse, a store that does not
//! exist) silences only the checks that need it, so one run reports everything once.

use std::collections::HashMap;

use crate::codes::{self, Code};
use crate::diag::{Diagnostic, Diagnostics, Span};
use crate::model::*;
use crate::names::{NameProblem, check_identifier, did_you_mean};
use crate::source::FileId;

/// Runs every validation rule over a lowered model.
pub fn validate(model: &Model, diags: &mut Diagnostics) {
    let mut v = Validator {
        model,
        diags,
        index: Index::build(model),
    };
    v.ecosystem();
    v.names();
    v.declarations();
    v.datastores();
    v.workspaces();
    v.platforms();
}

/// Where a datastore is defined.
#[derive(Clone, Copy)]
pub struct StoreRef<'m> {
    /// The owning team.
    pub team: &'m Team,
    /// The store.
    pub store: &'m Datastore,
    /// For a transformer output: the workspace and transformer that fill it.
    pub transformer: Option<(&'m Workspace, &'m Transformer)>,
}

impl<'m> StoreRef<'m> {
    /// The dataset of this store with a (case-insensitive) name.
    pub fn dataset(&self, name: &str) -> Option<&'m Dataset> {
        self.store
            .datasets
            .iter()
            .find(|d| d.name.value.eq_ignore_ascii_case(name))
    }

    /// The capture kind, when the store has exactly one capture of a known kind.
    pub fn capture_kind(&self) -> Option<CaptureKind> {
        match self.store.captures.as_slice() {
            [capture] => capture.kind,
            _ => None,
        }
    }
}

/// A data platform and the platform it belongs to.
#[derive(Clone, Copy)]
pub struct DataPlatformRef<'m> {
    /// The platform.
    pub platform: &'m Platform,
    /// The data platform.
    pub data_platform: &'m DataPlatform,
}

/// Name lookups over a model; the first definition of a name wins (duplicates are reported).
pub struct Index<'m> {
    /// Datastores (and transformer outputs) by lowercase name: every definition, in model order.
    pub stores: HashMap<String, Vec<StoreRef<'m>>>,
    /// Workspaces by lowercase name, with their team.
    pub workspaces: HashMap<String, (&'m Team, &'m Workspace)>,
    /// Data platforms by lowercase name.
    pub data_platforms: HashMap<String, DataPlatformRef<'m>>,
    /// Zones by name.
    pub zones: HashMap<&'m str, &'m Zone>,
    /// Vendors by name.
    pub vendors: HashMap<&'m str, &'m Vendor>,
    /// Assignments by (workspace, group), lowercase.
    pub assignments: HashMap<(String, String), &'m Assignment>,
}

impl<'m> Index<'m> {
    /// Indexes a model.
    pub fn build(model: &'m Model) -> Index<'m> {
        let mut index = Index {
            stores: HashMap::new(),
            workspaces: HashMap::new(),
            data_platforms: HashMap::new(),
            zones: HashMap::new(),
            vendors: HashMap::new(),
            assignments: HashMap::new(),
        };
        for team in &model.teams {
            for store in &team.datastores {
                index
                    .stores
                    .entry(store.name.key())
                    .or_default()
                    .push(StoreRef {
                        team,
                        store,
                        transformer: None,
                    });
            }
            for ws in &team.workspaces {
                index.workspaces.entry(ws.name.key()).or_insert((team, ws));
                for transformer in &ws.transformers {
                    for store in &transformer.outputs {
                        index
                            .stores
                            .entry(store.name.key())
                            .or_default()
                            .push(StoreRef {
                                team,
                                store,
                                transformer: Some((ws, transformer)),
                            });
                    }
                }
            }
        }
        for platform in &model.platforms {
            for dp in &platform.data_platforms {
                index
                    .data_platforms
                    .entry(dp.name.key())
                    .or_insert(DataPlatformRef {
                        platform,
                        data_platform: dp,
                    });
            }
        }
        for zone in &model.zones {
            index.zones.entry(zone.name.as_str()).or_insert(zone);
        }
        for eco in model.ecosystems.iter().take(1) {
            for vendor in &eco.vendors {
                index.vendors.entry(vendor.name.as_str()).or_insert(vendor);
            }
        }
        for a in &model.assignments {
            index
                .assignments
                .entry((a.workspace.key(), a.group.key()))
                .or_insert(a);
        }
        index
    }

    /// The datastore of a name, when exactly one is defined (a repeated name is reported on its own; looking
    /// through it would report consequences of the wrong definition).
    pub fn store(&self, name: &str) -> Option<StoreRef<'m>> {
        match self.stores.get(&name.to_ascii_lowercase())?.as_slice() {
            [only] => Some(*only),
            _ => None,
        }
    }

    /// Every data platform, in model order; of two with one name, only the first.
    fn all_data_platforms(model: &'m Model) -> impl Iterator<Item = DataPlatformRef<'m>> {
        let mut seen = std::collections::HashSet::new();
        model
            .platforms
            .iter()
            .flat_map(|platform| {
                platform
                    .data_platforms
                    .iter()
                    .map(move |data_platform| DataPlatformRef {
                        platform,
                        data_platform,
                    })
            })
            .filter(move |dp| seen.insert(dp.data_platform.name.key()))
    }
}

/// How a dataset group's data platform was chosen.
pub enum Resolution<'m> {
    /// Exactly one data platform serves the group.
    Resolved(DataPlatformRef<'m>),
    /// An assignment names a data platform that does not exist.
    UnknownAssigned(&'m Assignment),
    /// No candidate (the names of what was looked for).
    None(String),
    /// Several candidates.
    Ambiguous(String, Vec<DataPlatformRef<'m>>),
}

/// Chooses the data platform of a group, as "Choosing a data platform" in the language reference says.
pub fn resolve_group<'m>(
    model: &'m Model,
    index: &Index<'m>,
    ws: &'m Workspace,
    group: &'m DatasetGroup,
) -> Resolution<'m> {
    if let Some(assignment) = index.assignments.get(&(ws.name.key(), group.name.key())) {
        let Some(name) = &assignment.data_platform else {
            return Resolution::None("its assignment names no data platform".into());
        };
        return match index.data_platforms.get(&name.value.to_ascii_lowercase()) {
            Some(dp) => Resolution::Resolved(*dp),
            None => Resolution::UnknownAssigned(assignment),
        };
    }
    let wanted = if !ws.transformers.is_empty() {
        Some(Milestoning::LiveOnly)
    } else {
        group
            .requirements
            .as_ref()
            .and_then(|r| r.milestoning.as_ref())
            .map(|m| m.value)
    };
    let Some(wanted) = wanted else {
        return Resolution::None("it has no `requirements.milestoning` and no assignment".into());
    };
    let candidates: Vec<_> = Index::all_data_platforms(model)
        .filter(|dp| {
            dp.data_platform
                .milestoning
                .as_ref()
                .is_some_and(|m| m.value == wanted)
        })
        .collect();
    let what = format!("a {} data platform", wanted.as_str());
    match candidates.len() {
        0 => Resolution::None(format!("there is no {} data platform", wanted.as_str())),
        1 => Resolution::Resolved(candidates[0]),
        _ => Resolution::Ambiguous(what, candidates),
    }
}

struct Validator<'m, 'd> {
    model: &'m Model,
    diags: &'d mut Diagnostics,
    index: Index<'m>,
}

fn names_list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let names: Vec<String> = names.into_iter().map(|n| format!("`{n}`")).collect();
    match names.len() {
        0 => String::new(),
        1 => names[0].clone(),
        n => format!("{} and {}", names[..n - 1].join(", "), names[n - 1]),
    }
}

impl<'m> Validator<'m, '_> {
    fn push(&mut self, diagnostic: Diagnostic) {
        self.diags.push(diagnostic);
    }

    fn error(&mut self, code: &Code, span: Span, message: String, help: Option<String>) {
        let mut d = Diagnostic::new(code, span, message);
        d.help = help;
        self.push(d);
    }

    /// A bucket's `policy` must be a JSON object (it is compiled as parsed JSON).
    fn bucket_policy(&mut self, bucket: &Bucket) {
        let Some(policy) = &bucket.policy else {
            return;
        };
        let problem = match serde_json::from_str::<serde_json::Value>(&policy.value) {
            Ok(serde_json::Value::Object(_)) => return,
            Ok(_) => "is JSON but not an object".to_string(),
            Err(e) => format!("is not valid JSON: {e}"),
        };
        self.error(
            &codes::INVALID_POLICY,
            policy.span.clone(),
            format!("the `policy` of bucket `{}` {problem}", bucket.name.value),
            Some(
                "write the policy as one JSON object, `{ \"Version\": \"2012-10-17\", \"Statement\": [...] }`; a heredoc (`policy = <<EOT` ... `EOT`) keeps it readable".into(),
            ),
        );
    }

    // ---- rule 1 ----

    fn ecosystem(&mut self) {
        match self.model.ecosystems.as_slice() {
            [] => self.error(
                &codes::ECOSYSTEM_COUNT,
                Span::new(FileId(0), 0..0),
                "the model has no `ecosystem` block".into(),
                Some("add one `ecosystem \"<name>\" { owning_repo = { repo = \"owner/name\", branch = \"main\" } }`".into()),
            ),
            [first, rest @ ..] => {
                for extra in rest {
                    self.push(
                        Diagnostic::new(
                            &codes::ECOSYSTEM_COUNT,
                            extra.span.clone(),
                            format!(
                                "a second `ecosystem` block (`{}`); a model has exactly one",
                                extra.name.value
                            ),
                        )
                        .with_label(first.span.clone(), "the first ecosystem")
                        .with_help("merge them into one ecosystem block"),
                    );
                }
            }
        }
    }

    // ---- rule 2 ----

    fn identifier(&mut self, name: &Name, what: &str) {
        match check_identifier(&name.value) {
            None => {}
            Some(NameProblem::NotIdentifier) => self.error(
                &codes::INVALID_NAME,
                name.span.clone(),
                format!("{what} name `{}` is not an identifier", name.value),
                Some(
                    "names start with a letter, then letters, digits or `_`, at most 63 characters"
                        .into(),
                ),
            ),
            Some(NameProblem::Reserved) => self.error(
                &codes::RESERVED_NAME,
                name.span.clone(),
                format!("{what} name `{}` is a reserved SQL key word", name.value),
                Some(format!(
                    "choose another name, for example `{}_`",
                    name.value
                )),
            ),
        }
    }

    /// Reports names that repeat (case-insensitively) within one scope.
    fn unique<'n>(&mut self, names: impl IntoIterator<Item = &'n Name>, what: &str, scope: &str) {
        let mut seen: HashMap<String, &Name> = HashMap::new();
        for name in names {
            match seen.get(&name.key()) {
                Some(first) => {
                    let first_span = first.span.clone();
                    self.push(
                        Diagnostic::new(
                            &codes::DUPLICATE_NAME,
                            name.span.clone(),
                            format!(
                                "{what} `{}` is {} twice {scope}",
                                name.value,
                                if what.ends_with("declaration") {
                                    "declared"
                                } else {
                                    "defined"
                                }
                            ),
                        )
                        .with_label(first_span, "first defined here")
                        .with_help(format!(
                            "{what} names are unique {scope}, ignoring case; rename or remove one"
                        )),
                    );
                }
                None => {
                    seen.insert(name.key(), name);
                }
            }
        }
    }

    fn names(&mut self) {
        let model = self.model;
        let all_stores = || {
            model.teams.iter().flat_map(|t| {
                t.datastores.iter().chain(
                    t.workspaces
                        .iter()
                        .flat_map(|w| w.transformers.iter().flat_map(|tr| tr.outputs.iter())),
                )
            })
        };
        for store in all_stores() {
            self.identifier(&store.name, "datastore");
            for dataset in &store.datasets {
                self.identifier(&dataset.name, "dataset");
                if let Some(table) = &dataset.table {
                    for column in &table.columns {
                        self.identifier(&column.name, "column");
                    }
                    self.unique(
                        table.columns.iter().map(|c| &c.name),
                        "column",
                        &format!("in dataset `{}.{}`", store.name.value, dataset.name.value),
                    );
                }
            }
            self.unique(
                store.datasets.iter().map(|d| &d.name),
                "dataset",
                &format!("in datastore `{}`", store.name.value),
            );
        }
        // A transformer output named like another team's store is DS1701, reported with the transformer.
        let index = &self.index;
        let mut keys: Vec<&String> = index.stores.keys().collect();
        keys.sort();
        for key in keys {
            let defs = &index.stores[key];
            let first = defs[0];
            for def in &defs[1..] {
                let cross_team_output = (def.transformer.is_some() || first.transformer.is_some())
                    && !std::ptr::eq(def.team, first.team);
                if cross_team_output {
                    continue;
                }
                self.diags.push(
                    Diagnostic::new(
                        &codes::DUPLICATE_NAME,
                        def.store.name.span.clone(),
                        format!("datastore `{}` is defined twice in the ecosystem", def.store.name.value),
                    )
                    .with_label(first.store.name.span.clone(), "first defined here")
                    .with_help("datastore names are unique in the ecosystem, ignoring case; rename or remove one"),
                );
            }
        }
        let workspaces = || model.teams.iter().flat_map(|t| t.workspaces.iter());
        for ws in workspaces() {
            self.identifier(&ws.name, "workspace");
            for group in &ws.groups {
                self.identifier(&group.name, "dataset group");
            }
            for transformer in &ws.transformers {
                self.identifier(&transformer.name, "transformer");
            }
            self.unique(
                ws.groups.iter().map(|g| &g.name),
                "dataset group",
                &format!("in workspace `{}`", ws.name.value),
            );
            for group in &ws.groups {
                for (first, sink) in repeated(&group.sinks, |s| (s.store.key(), s.dataset.key())) {
                    self.push(
                        Diagnostic::new(
                            &codes::DUPLICATE_NAME,
                            sink.span.clone(),
                            format!(
                                "sink `{}.{}` appears twice in dataset group `{}.{}`",
                                sink.store.value,
                                sink.dataset.value,
                                ws.name.value,
                                group.name.value
                            ),
                        )
                        .with_label(first.span.clone(), "first sink here")
                        .with_help("remove one of them"),
                    );
                }
            }
        }
        self.unique(
            workspaces().map(|w| &w.name),
            "workspace",
            "in the ecosystem",
        );
        let data_platforms = || model.platforms.iter().flat_map(|p| p.data_platforms.iter());
        for dp in data_platforms() {
            self.identifier(&dp.name, "data platform");
        }
        self.unique(
            data_platforms().map(|d| &d.name),
            "data platform",
            "in the ecosystem",
        );
        self.unique(
            model.platforms.iter().map(|p| &p.name),
            "platform",
            "in the ecosystem",
        );
        self.unique(
            model.zones.iter().map(|z| &z.name),
            "zone",
            "in the ecosystem",
        );
        for eco in &model.ecosystems {
            self.unique(
                eco.zone_declarations.iter().map(|d| &d.name),
                "zone declaration",
                "in the ecosystem",
            );
            self.unique(
                eco.vendors.iter().map(|v| &v.name),
                "vendor",
                "in the ecosystem",
            );
        }
        for zone in &model.zones {
            let scope = format!("in zone `{}`", zone.name.value);
            self.unique(
                zone.team_declarations.iter().map(|d| &d.name),
                "team declaration",
                &scope,
            );
            for (policies, what) in [
                (&zone.classification_policies, "classification policy"),
                (&zone.location_policies, "location policy"),
                (&zone.vendor_policies, "vendor policy"),
                (&zone.data_platform_policies, "data platform policy"),
            ] {
                self.unique(
                    policies.iter().filter_map(|p| p.name.as_ref()),
                    what,
                    &scope,
                );
            }
        }
        for (first, team) in repeated(&model.teams, |t| (t.zone.key(), t.name.key())) {
            self.push(
                Diagnostic::new(
                    &codes::DUPLICATE_NAME,
                    team.span.clone(),
                    format!(
                        "team `{}` of zone `{}` is defined twice",
                        team.name.value, team.zone.value
                    ),
                )
                .with_label(first.span.clone(), "first defined here")
                .with_help("a team is one `team` block; merge them"),
            );
        }
        for (first, a) in repeated(&model.assignments, |a| (a.workspace.key(), a.group.key())) {
            self.push(
                Diagnostic::new(
                    &codes::DUPLICATE_NAME,
                    a.span.clone(),
                    format!(
                        "dataset group `{}.{}` is assigned twice",
                        a.workspace.value, a.group.value
                    ),
                )
                .with_label(first.span.clone(), "first assignment here")
                .with_help("keep one assignment per dataset group"),
            );
        }
        for platform in &model.platforms {
            if let Some(store) = &platform.object_store {
                self.unique(
                    store.buckets.iter().map(|b| &b.name),
                    "bucket",
                    &format!("in platform `{}`", platform.name.value),
                );
                for bucket in &store.buckets {
                    self.bucket_policy(bucket);
                }
            }
        }
    }

    // ---- rule 3 ----

    fn declarations(&mut self) {
        let model = self.model;
        let Some(eco) = model.ecosystems.first() else {
            return;
        };
        let declared_zones: HashMap<&str, &Declaration> = eco
            .zone_declarations
            .iter()
            .map(|d| (d.name.as_str(), d))
            .collect();
        for zone in &model.zones {
            if !declared_zones.contains_key(zone.name.as_str()) {
                let help = match did_you_mean(zone.name.as_str(), declared_zones.keys().copied()) {
                    Some(close) => format!(
                        "did you mean zone `{close}`? Otherwise declare it in the ecosystem: `zone_declaration \"{}\" {{ owning_repo = ... }}`",
                        zone.name.value
                    ),
                    None => format!(
                        "declare it in ecosystem `{}`: `zone_declaration \"{}\" {{ owning_repo = {{ repo = \"owner/name\", branch = \"main\" }} }}`",
                        eco.name.value, zone.name.value
                    ),
                };
                self.error(
                    &codes::UNDECLARED_ZONE,
                    zone.name.span.clone(),
                    format!(
                        "zone `{}` is defined but ecosystem `{}` has no zone_declaration for it",
                        zone.name.value, eco.name.value
                    ),
                    Some(help),
                );
            }
        }
        for declaration in &eco.zone_declarations {
            if !self.index.zones.contains_key(declaration.name.as_str()) {
                self.error(
                    &codes::UNDEFINED_DECLARATION,
                    declaration.span.clone(),
                    format!("zone `{}` is declared but has no `zone` block", declaration.name.value),
                    Some(format!("its owning repo defines it with `zone \"{}\" {{ ... }}`; until then it is empty", declaration.name.value)),
                );
            }
        }
        for team in &model.teams {
            let Some(zone) = self.index.zones.get(team.zone.as_str()).copied() else {
                let known: Vec<&str> = model.zones.iter().map(|z| z.name.as_str()).collect();
                let help = match did_you_mean(team.zone.as_str(), known.iter().copied()) {
                    Some(close) => format!("did you mean zone `{close}`?"),
                    None => {
                        "define the zone and declare the team in it with `team_declaration`".into()
                    }
                };
                self.error(
                    &codes::UNDECLARED_TEAM,
                    team.zone.span.clone(),
                    format!(
                        "team `{}` belongs to zone `{}`, which is not defined",
                        team.name.value, team.zone.value
                    ),
                    Some(help),
                );
                continue;
            };
            if !zone
                .team_declarations
                .iter()
                .any(|d| d.name.value == team.name.value)
            {
                let help = match did_you_mean(
                    team.name.as_str(),
                    zone.team_declarations.iter().map(|d| d.name.as_str()),
                ) {
                    Some(close) => format!("did you mean team `{close}`?"),
                    None => format!(
                        "declare it in zone `{}`: `team_declaration \"{}\" {{ owning_repo = ... }}`",
                        zone.name.value, team.name.value
                    ),
                };
                self.push(
                    Diagnostic::new(
                        &codes::UNDECLARED_TEAM,
                        team.name.span.clone(),
                        format!(
                            "team `{}` is defined but zone `{}` has no team_declaration for it",
                            team.name.value, zone.name.value
                        ),
                    )
                    .with_label(zone.name.span.clone(), "the zone")
                    .with_help(help),
                );
            }
        }
        for zone in &model.zones {
            for declaration in &zone.team_declarations {
                let defined = model.teams.iter().any(|t| {
                    t.zone.value == zone.name.value && t.name.value == declaration.name.value
                });
                if !defined {
                    self.error(
                        &codes::UNDEFINED_DECLARATION,
                        declaration.span.clone(),
                        format!(
                            "team `{}` is declared in zone `{}` but has no `team` block",
                            declaration.name.value, zone.name.value
                        ),
                        Some(format!(
                            "its owning repo defines it with `team \"{}\" \"{}\" {{ ... }}`",
                            zone.name.value, declaration.name.value
                        )),
                    );
                }
            }
        }
    }

    // ---- rules 5–11 ----

    fn datastores(&mut self) {
        let model = self.model;
        for team in &model.teams {
            for store in &team.datastores {
                self.datastore(store, false);
            }
            for ws in &team.workspaces {
                for transformer in &ws.transformers {
                    for store in &transformer.outputs {
                        self.datastore(store, true);
                    }
                }
            }
        }
    }

    fn datastore(&mut self, store: &'m Datastore, output: bool) {
        let store_name = &store.name.value;
        if !output {
            match store.captures.len() {
                1 => {}
                0 => self.error(
                    &codes::CAPTURE_COUNT,
                    store.span.clone(),
                    format!("datastore `{store_name}` has no `capture` block"),
                    Some("add `capture \"cdc\" { ... }` (or sql_snapshot, sql_watermark, kafka) to say how it is ingested".into()),
                ),
                _ => {
                    for extra in &store.captures[1..] {
                        self.push(
                            Diagnostic::new(
                                &codes::CAPTURE_COUNT,
                                extra.span.clone(),
                                format!("datastore `{store_name}` has more than one `capture` block"),
                            )
                            .with_label(store.captures[0].span.clone(), "the first capture")
                            .with_help("a store is ingested one way: keep one capture"),
                        );
                    }
                }
            }
        }
        if store.datasets.is_empty() {
            self.error(
                &codes::NO_DATASETS,
                store.span.clone(),
                format!(
                    "{} `{store_name}` has no datasets",
                    if output { "output store" } else { "datastore" }
                ),
                Some("add `dataset \"<name>\" { table { columns = { ... } } }`".into()),
            );
        }
        let capture = match store.captures.as_slice() {
            [capture] => Some(capture),
            _ => None,
        };
        let kind = capture.and_then(|c| c.kind);
        for dataset in &store.datasets {
            self.dataset(store, dataset, kind == Some(CaptureKind::Cdc));
        }
        if let Some(capture) = capture {
            self.capture(store, capture);
        }
    }

    fn dataset(&mut self, store: &Datastore, dataset: &Dataset, cdc: bool) {
        let what = format!("dataset `{}.{}`", store.name.value, dataset.name.value);
        let column_classified = dataset
            .table
            .iter()
            .flat_map(|t| t.columns.iter())
            .find(|c| !c.classifications.is_empty());
        if let (Some(span), Some(column)) = (&dataset.classifications_span, column_classified) {
            self.push(
                Diagnostic::new(
                    &codes::CLASSIFICATION_TWICE,
                    span.clone(),
                    format!("{what} has classifications on the dataset and on its columns"),
                )
                .with_label(
                    column.name.span.clone(),
                    format!("column `{}` is classified too", column.name.value),
                )
                .with_help("classify either the whole dataset or its columns, not both"),
            );
        }
        if store.production_status == ProductionStatus::Production
            && dataset.all_classifications().next().is_none()
        {
            self.error(
                &codes::UNCLASSIFIED_PRODUCTION,
                dataset.name.span.clone(),
                format!("{what} has no classifications, and its store `{}` is PRODUCTION", store.name.value),
                Some("add `classifications = [\"PUB\"]` (or the right ones) to the dataset or to its columns".into()),
            );
        }
        let Some(table) = &dataset.table else { return };
        // Rule 6: keys.
        let flagged: Vec<&Column> = table.columns.iter().filter(|c| c.primary_key).collect();
        for column in &flagged {
            self.not_nullable_key(&what, column, "primary key");
        }
        if let Some(list) = &table.primary_key {
            let mut listed: Vec<String> = Vec::new();
            for entry in list {
                if listed.contains(&entry.value.to_ascii_lowercase()) {
                    self.error(
                        &codes::PRIMARY_KEY_MISMATCH,
                        entry.span.clone(),
                        format!(
                            "column `{}` is listed twice in the primary_key of {what}",
                            entry.value
                        ),
                        Some("list each key column once".into()),
                    );
                    continue;
                }
                listed.push(entry.value.to_ascii_lowercase());
                match table.column(&entry.value) {
                    None => self.unknown_key_column(&what, table, entry, "primary_key"),
                    Some(column) if !column.primary_key => self.push(
                        Diagnostic::new(
                            &codes::PRIMARY_KEY_MISMATCH,
                            entry.span.clone(),
                            format!("column `{}` is in the primary_key list of {what} but not flagged `primary_key = true`", entry.value),
                        )
                        .with_label(column.span.clone(), "the column")
                        .with_help("flag the column `primary_key = true`, or drop it from the list"),
                    ),
                    Some(_) => {}
                }
            }
            for column in &flagged {
                if !listed.contains(&column.name.key()) {
                    let mut d = Diagnostic::new(
                        &codes::PRIMARY_KEY_MISMATCH,
                        column.span.clone(),
                        format!("column `{}` of {what} is flagged `primary_key = true` but missing from the primary_key list", column.name.value),
                    )
                    .with_help("add it to the primary_key list, or drop the flag");
                    if let Some(span) = &table.primary_key_span {
                        d = d.with_label(span.clone(), "the list");
                    }
                    self.push(d);
                }
            }
        } else if flagged.is_empty() {
            let d = if cdc {
                Diagnostic::new(
                    &codes::CDC_PRIMARY_KEY,
                    dataset.name.span.clone(),
                    format!("{what} has no primary key, and its store `{}` is captured with cdc", store.name.value),
                )
                .with_help("change events are applied by key: flag the key columns `primary_key = true, nullable = false`")
            } else {
                Diagnostic::new(
                    &codes::NO_PRIMARY_KEY,
                    dataset.name.span.clone(),
                    format!("{what} has no primary key: every column together is its key"),
                )
                .with_help(
                    "flag the key columns `primary_key = true, nullable = false` if it has one",
                )
            };
            self.push(d);
        }
        if let Some(list) = &table.partition_key {
            for entry in list {
                match table.column(&entry.value) {
                    None => self.unknown_key_column(&what, table, entry, "partition_key"),
                    Some(column) => self.not_nullable_key(&what, column, "partition key"),
                }
            }
        }
    }

    fn not_nullable_key(&mut self, what: &str, column: &Column, key: &str) {
        if column.nullable {
            let span = column
                .nullable_span
                .clone()
                .unwrap_or_else(|| column.span.clone());
            let help = if column.nullable_span.is_some() {
                "key columns cannot hold NULL: set `nullable = false`"
            } else {
                "columns are nullable unless they say otherwise: add `nullable = false`"
            };
            self.error(
                &codes::NULLABLE_KEY_COLUMN,
                span,
                format!("{key} column `{}` of {what} is nullable", column.name.value),
                Some(help.into()),
            );
        }
    }

    fn unknown_key_column(
        &mut self,
        what: &str,
        table: &Table,
        entry: &Spanned<String>,
        list: &str,
    ) {
        let help = match did_you_mean(&entry.value, table.columns.iter().map(|c| c.name.as_str())) {
            Some(close) => format!("did you mean `{close}`?"),
            None => format!(
                "the columns are {}",
                names_list(table.columns.iter().map(|c| c.name.as_str()))
            ),
        };
        self.error(
            &codes::UNKNOWN_KEY_COLUMN,
            entry.span.clone(),
            format!(
                "{list} of {what} names column `{}`, which does not exist",
                entry.value
            ),
            Some(help),
        );
    }

    fn capture(&mut self, store: &'m Datastore, capture: &'m Capture) {
        let Some(kind) = capture.kind else { return };
        let store_name = &store.name.value;
        if capture.credential.is_none() {
            self.error(
                &codes::MISSING_CREDENTIAL,
                capture.span.clone(),
                format!("the {} capture of datastore `{store_name}` has no `credential`", kind.as_str()),
                Some("add `credential = \"<name>\"`: ds reads <NAME>_USER and <NAME>_PASSWORD when it connects".into()),
            );
        }
        match (kind, &capture.source) {
            (CaptureKind::Kafka, Some(source)) => self.error(
                &codes::UNKNOWN_BLOCK,
                source.source_span.clone(),
                format!("the kafka capture of datastore `{store_name}` reads topics; it takes no `source`"),
                Some("remove the source block; name topics with `topic_for_dataset`".into()),
            ),
            (CaptureKind::Kafka, None) => {}
            (_, None) => self.error(
                &codes::MISSING_SOURCE,
                capture.span.clone(),
                format!("the {} capture of datastore `{store_name}` has no `source`", kind.as_str()),
                Some("add `source { postgres { host = \"...\", database = \"...\" } }`".into()),
            ),
            (CaptureKind::Cdc, Some(source)) if source.engine != SourceEngine::Postgres => self.error(
                &codes::CDC_SOURCE,
                source.span.clone(),
                format!("datastore `{store_name}` is captured with cdc, which needs a Postgres source"),
                Some("cdc uses Debezium with pgoutput; capture a MySQL source with sql_snapshot or sql_watermark".into()),
            ),
            _ => {}
        }
        // Rule 10.
        match (kind, &capture.watermark) {
            (CaptureKind::SqlWatermark, None) => self.error(
                &codes::MISSING_WATERMARK,
                capture.span.clone(),
                format!("the sql_watermark capture of datastore `{store_name}` has no `watermark`"),
                Some("add `watermark = { column = \"updated_at\" }`".into()),
            ),
            (CaptureKind::SqlWatermark, Some(column)) => {
                for dataset in &store.datasets {
                    let Some(table) = &dataset.table else { continue };
                    match table.column(&column.value) {
                        None => self.push(
                            Diagnostic::new(
                                &codes::WATERMARK_COLUMN,
                                dataset.name.span.clone(),
                                format!("dataset `{store_name}.{}` has no watermark column `{}`", dataset.name.value, column.value),
                            )
                            .with_label(column.span.clone(), "the watermark")
                            .with_help("every dataset of a sql_watermark store needs the watermark column"),
                        ),
                        Some(col) => {
                            if let Some(ty) = &col.ty
                                && !ty.value.is_integer()
                                && !ty.value.is_timestamp()
                            {
                                self.push(
                                    Diagnostic::new(
                                        &codes::WATERMARK_TYPE,
                                        ty.span.clone(),
                                        format!("watermark column `{}` of dataset `{store_name}.{}` is {}, not an integer or timestamp", col.name.value, dataset.name.value, ty.value),
                                    )
                                    .with_label(column.span.clone(), "the watermark")
                                    .with_help("a watermark only grows: use smallint, integer, bigint, timestamp or timestamptz"),
                                );
                            }
                        }
                    }
                }
            }
            (_, Some(column)) => self.error(
                &codes::MISSING_WATERMARK,
                column.span.clone(),
                format!("the {} capture of datastore `{store_name}` has a `watermark`, which only sql_watermark uses", kind.as_str()),
                Some("remove it, or capture with `sql_watermark`".into()),
            ),
            _ => {}
        }
        // Rule 11.
        let maps = [
            (
                "table_for_dataset",
                &capture.table_for_dataset,
                kind != CaptureKind::Kafka,
            ),
            (
                "topic_for_dataset",
                &capture.topic_for_dataset,
                kind == CaptureKind::Kafka,
            ),
        ];
        for (attr, map, applies) in maps {
            if !applies && let Some((first, _)) = map.first() {
                self.error(
                    &codes::UNKNOWN_ATTRIBUTE,
                    first.span.clone(),
                    format!("`{attr}` does not apply to the {} capture of datastore `{store_name}`", kind.as_str()),
                    Some(if attr == "topic_for_dataset" {
                        "topics are for kafka captures; use `table_for_dataset` for database sources".into()
                    } else {
                        "kafka captures read topics: use `topic_for_dataset`".into()
                    }),
                );
                continue;
            }
            for (dataset, _) in map {
                if !store
                    .datasets
                    .iter()
                    .any(|d| d.name.value.eq_ignore_ascii_case(&dataset.value))
                {
                    let help = match did_you_mean(
                        &dataset.value,
                        store.datasets.iter().map(|d| d.name.as_str()),
                    ) {
                        Some(close) => format!("did you mean `{close}`?"),
                        None => format!(
                            "the datasets are {}",
                            names_list(store.datasets.iter().map(|d| d.name.as_str()))
                        ),
                    };
                    self.error(
                        &codes::UNKNOWN_MAPPED_DATASET,
                        dataset.span.clone(),
                        format!("`{attr}` of datastore `{store_name}` maps dataset `{}`, which the store does not have", dataset.value),
                        Some(help),
                    );
                }
            }
        }
        for location in &capture.locations {
            self.known_location(
                location,
                &format!("the capture of datastore `{store_name}`"),
            );
        }
    }

    // ---- rules 12–17 ----

    fn workspaces(&mut self) {
        let model = self.model;
        for team in &model.teams {
            for ws in &team.workspaces {
                self.workspace(team, ws);
            }
        }
        for assignment in &model.assignments {
            let Some((_, ws)) = self
                .index
                .workspaces
                .get(&assignment.workspace.key())
                .copied()
            else {
                let help = match did_you_mean(
                    assignment.workspace.as_str(),
                    self.index.workspaces.values().map(|(_, w)| w.name.as_str()),
                ) {
                    Some(close) => format!("did you mean `{close}`?"),
                    None => "remove the assignment, or fix the workspace name".into(),
                };
                self.error(
                    &codes::UNKNOWN_ASSIGNMENT,
                    assignment.workspace.span.clone(),
                    format!(
                        "assignment names workspace `{}`, which does not exist",
                        assignment.workspace.value
                    ),
                    Some(help),
                );
                continue;
            };
            if !ws
                .groups
                .iter()
                .any(|g| g.name.key() == assignment.group.key())
            {
                let help = match did_you_mean(
                    assignment.group.as_str(),
                    ws.groups.iter().map(|g| g.name.as_str()),
                ) {
                    Some(close) => format!("did you mean `{close}`?"),
                    None => format!(
                        "the groups of `{}` are {}",
                        ws.name.value,
                        names_list(ws.groups.iter().map(|g| g.name.as_str()))
                    ),
                };
                self.error(
                    &codes::UNKNOWN_ASSIGNMENT,
                    assignment.group.span.clone(),
                    format!("assignment names dataset group `{}` of workspace `{}`, which does not exist", assignment.group.value, ws.name.value),
                    Some(help),
                );
            }
        }
        self.transformer_cycles();
    }

    fn workspace(&mut self, team: &'m Team, ws: &'m Workspace) {
        let zone = self.index.zones.get(team.zone.as_str()).copied();
        if ws.transformers.len() > 1 {
            for extra in &ws.transformers[1..] {
                self.push(
                    Diagnostic::new(
                        &codes::TRANSFORMER_COUNT,
                        extra.span.clone(),
                        format!("workspace `{}` has more than one transformer", ws.name.value),
                    )
                    .with_label(ws.transformers[0].span.clone(), "the first transformer")
                    .with_help("a workspace has at most one transformer: move this one to its own workspace"),
                );
            }
        }
        let mut platform_of_workspace: Option<(DataPlatformRef<'m>, &'m DatasetGroup)> = None;
        for group in &ws.groups {
            let group_what = format!("dataset group `{}.{}`", ws.name.value, group.name.value);
            if group.sinks.is_empty() {
                self.error(
                    &codes::EMPTY_GROUP,
                    group.span.clone(),
                    format!("{group_what} has no sinks"),
                    Some(
                        "add `sink \"<store>\" \"<dataset>\" {}` for each dataset it consumes"
                            .into(),
                    ),
                );
            }
            if !ws.transformers.is_empty()
                && let Some(req) = &group.requirements
            {
                self.push(
                    Diagnostic::new(
                        &codes::TRANSFORMER_REQUIREMENTS,
                        req.span.clone(),
                        format!("{group_what} belongs to a transformer workspace and cannot carry requirements"),
                    )
                    .with_label(ws.transformers[0].span.clone(), "the transformer")
                    .with_help("remove `requirements`: a transformer's inputs are served by the LIVE_ONLY data platform (or an assignment)"),
                );
            }
            let resolved = self.resolve(ws, group, zone);
            if let Some(dp) = resolved {
                match platform_of_workspace {
                    None => platform_of_workspace = Some((dp, group)),
                    Some((first, first_group)) if !std::ptr::eq(first.platform, dp.platform) => {
                        self.push(
                            Diagnostic::new(
                                &codes::WORKSPACE_PLATFORMS,
                                group.name.span.clone(),
                                format!(
                                    "dataset group `{}.{}` is served by `{}` of platform `{}`, but group `{}` of the same workspace by `{}` of platform `{}`",
                                    ws.name.value, group.name.value, dp.data_platform.name.value, dp.platform.name.value,
                                    first_group.name.value, first.data_platform.name.value, first.platform.name.value
                                ),
                            )
                            .with_label(first_group.name.span.clone(), "the other group")
                            .with_help("a workspace's views live in one merge database: assign its groups to data platforms of one platform, or split the workspace"),
                        );
                    }
                    Some(_) => {}
                }
            }
            for sink in &group.sinks {
                self.sink(ws, zone, group, sink, resolved);
            }
        }
        for transformer in &ws.transformers {
            self.transformer(team, ws, transformer);
        }
    }

    /// Rule 16: the group's data platform, reported when it cannot be chosen or is not allowed.
    fn resolve(
        &mut self,
        ws: &'m Workspace,
        group: &'m DatasetGroup,
        zone: Option<&'m Zone>,
    ) -> Option<DataPlatformRef<'m>> {
        let group_what = format!("dataset group `{}.{}`", ws.name.value, group.name.value);
        match resolve_group(self.model, &self.index, ws, group) {
            Resolution::Resolved(dp) => {
                let required = group
                    .requirements
                    .as_ref()
                    .and_then(|r| r.milestoning.as_ref());
                if let (Some(required), Some(actual)) = (required, &dp.data_platform.milestoning)
                    && required.value != actual.value
                {
                    self.push(
                        Diagnostic::new(
                            &codes::MILESTONING_MISMATCH,
                            required.span.clone(),
                            format!(
                                "{group_what} requires {} but is assigned data platform `{}`, which is {}",
                                required.value.as_str(),
                                dp.data_platform.name.value,
                                actual.value.as_str()
                            ),
                        )
                        .with_label(dp.data_platform.name.span.clone(), "the data platform")
                        .with_help("assign a data platform of the required milestoning, or change the requirement"),
                    );
                }
                if let Some(zone) = zone {
                    for policy in &zone.data_platform_policies {
                        if !policy_accepts(policy, |entry| {
                            entry.eq_ignore_ascii_case(&dp.data_platform.name.value)
                        }) {
                            let policy_name = policy.name.as_ref().map_or("", |n| n.as_str());
                            self.push(
                                Diagnostic::new(
                                    &codes::DATA_PLATFORM_POLICY,
                                    group.name.span.clone(),
                                    format!(
                                        "{group_what} would be served by data platform `{}`, which data_platform_policy `{policy_name}` of zone `{}` refuses",
                                        dp.data_platform.name.value, zone.name.value
                                    ),
                                )
                                .with_label(policy.span.clone(), "the policy")
                                .with_help("assign an allowed data platform with an `assignment` block, or change the policy"),
                            );
                        }
                    }
                }
                Some(dp)
            }
            Resolution::UnknownAssigned(assignment) => {
                let name = assignment
                    .data_platform
                    .as_ref()
                    .expect("resolved from a name");
                let help = match did_you_mean(
                    &name.value,
                    self.index
                        .data_platforms
                        .values()
                        .map(|d| d.data_platform.name.as_str()),
                ) {
                    Some(close) => format!("did you mean `{close}`?"),
                    None => "name a `data_platform` of a platform block".into(),
                };
                self.error(
                    &codes::UNKNOWN_DATA_PLATFORM,
                    name.span.clone(),
                    format!("the assignment of {group_what} names data platform `{}`, which does not exist", name.value),
                    Some(help),
                );
                None
            }
            Resolution::None(what) => {
                let help = if what.starts_with("it has no `requirements") {
                    "add `requirements = { milestoning = \"LIVE_ONLY\" }` (or FORENSIC), or an `assignment` block".to_string()
                } else {
                    "add a data platform with that milestoning to a platform, or assign one with an `assignment` block".to_string()
                };
                self.error(
                    &codes::NO_DATA_PLATFORM,
                    group.name.span.clone(),
                    format!("no data platform can serve {group_what}: {what}"),
                    Some(help),
                );
                None
            }
            Resolution::Ambiguous(what, candidates) => {
                let names = names_list(candidates.iter().map(|c| c.data_platform.name.as_str()));
                self.error(
                    &codes::AMBIGUOUS_DATA_PLATFORM,
                    group.name.span.clone(),
                    format!("{group_what} could be served by several data platforms, each {what}: {names}"),
                    Some(format!(
                        "choose one: `assignment \"{}\" \"{}\" {{ data_platform = \"{}\" }}`",
                        ws.name.value, group.name.value, candidates[0].data_platform.name.value
                    )),
                );
                None
            }
        }
    }

    fn sink(
        &mut self,
        ws: &'m Workspace,
        zone: Option<&'m Zone>,
        group: &'m DatasetGroup,
        sink: &'m Sink,
        data_platform: Option<DataPlatformRef<'m>>,
    ) {
        if self
            .index
            .stores
            .get(&sink.store.key())
            .is_some_and(|defs| defs.len() > 1)
        {
            return;
        }
        let Some(store) = self.index.store(&sink.store.value) else {
            let help = match did_you_mean(
                sink.store.as_str(),
                self.index.stores.values().map(|s| s[0].store.name.as_str()),
            ) {
                Some(close) => format!("did you mean `{close}`?"),
                None => "name a datastore defined in some team".into(),
            };
            self.error(
                &codes::UNKNOWN_STORE,
                sink.store.span.clone(),
                format!(
                    "sink of dataset group `{}.{}` names datastore `{}`, which does not exist",
                    ws.name.value, group.name.value, sink.store.value
                ),
                Some(help),
            );
            return;
        };
        let Some(dataset) = store.dataset(sink.dataset.as_str()) else {
            let help = match did_you_mean(
                sink.dataset.as_str(),
                store.store.datasets.iter().map(|d| d.name.as_str()),
            ) {
                Some(close) => format!("did you mean `{close}`?"),
                None => format!(
                    "the datasets of `{}` are {}",
                    store.store.name.value,
                    names_list(store.store.datasets.iter().map(|d| d.name.as_str()))
                ),
            };
            self.push(
                Diagnostic::new(
                    &codes::UNKNOWN_DATASET,
                    sink.dataset.span.clone(),
                    format!("sink of dataset group `{}.{}` names dataset `{}` of datastore `{}`, which has no such dataset", ws.name.value, group.name.value, sink.dataset.value, store.store.name.value),
                )
                .with_label(store.store.name.span.clone(), "the datastore")
                .with_help(help),
            );
            return;
        };
        // Rule 13.
        let deprecated = if dataset.deprecated {
            Some((
                format!(
                    "dataset `{}.{}` is deprecated",
                    store.store.name.value, dataset.name.value
                ),
                &dataset.name.span,
            ))
        } else if store.store.deprecated {
            Some((
                format!("datastore `{}` is deprecated", store.store.name.value),
                &store.store.name.span,
            ))
        } else {
            None
        };
        if let Some((why, where_deprecated)) = deprecated {
            let (code, help) = if sink.deprecations_allowed {
                (
                    &codes::DEPRECATED_ALLOWED,
                    "plan to move off it: it may be removed",
                )
            } else {
                (
                    &codes::DEPRECATED_CONSUMED,
                    "move to its replacement, or accept it for now with `deprecations_allowed = true`",
                )
            };
            self.push(
                Diagnostic::new(
                    code,
                    sink.span.clone(),
                    format!("{why}, and workspace `{}` consumes it", ws.name.value),
                )
                .with_label(where_deprecated.clone(), "deprecated here")
                .with_help(help),
            );
        }
        // Rule 14.
        if let Some(zone) = zone {
            for policy in &zone.classification_policies {
                self.classification_policy(
                    ws,
                    sink,
                    store,
                    dataset,
                    policy,
                    &codes::ZONE_CLASSIFICATION,
                    &format!(
                        "classification_policy `{}` of zone `{}`",
                        policy.name.as_ref().map_or("", |n| n.as_str()),
                        zone.name.value
                    ),
                );
            }
        }
        if let Some(verifier) = &ws.classification_verifier {
            self.classification_policy(
                ws,
                sink,
                store,
                dataset,
                verifier,
                &codes::VERIFIER_CLASSIFICATION,
                &format!(
                    "the classification_verifier of workspace `{}`",
                    ws.name.value
                ),
            );
        }
        // Rule 15.
        let Some(dp) = data_platform else { return };
        let Some(store_zone) = self.index.zones.get(store.team.zone.as_str()).copied() else {
            return;
        };
        for location in &dp.platform.locations {
            for policy in &store_zone.location_policies {
                let accepted =
                    policy_accepts(policy, |entry| location_within(&location.value, entry));
                if !accepted {
                    self.push(
                        Diagnostic::new(
                            &codes::LOCATION_POLICY,
                            sink.span.clone(),
                            format!(
                                "datastore `{}` of zone `{}` may not be ingested at `{}`, by platform `{}` for `{}.{}`: location_policy `{}` refuses it",
                                store.store.name.value, store_zone.name.value, location.value, dp.platform.name.value, ws.name.value, group.name.value,
                                policy.name.as_ref().map_or("", |n| n.as_str())
                            ),
                        )
                        .with_label(location.span.clone(), "the platform's location")
                        .with_label(policy.span.clone(), "the policy")
                        .with_help("serve this group from a platform in an allowed location, or change the policy"),
                    );
                }
            }
            let vendor_name = location.value.split(':').next().unwrap_or("");
            let cloud = self
                .index
                .vendors
                .get(vendor_name)
                .and_then(|v| v.cloud.as_ref())
                .map(|c| c.value.clone());
            let vendor_what = match &cloud {
                Some(cloud) => format!("vendor `{vendor_name}` (cloud `{cloud}`)"),
                None => format!("vendor `{vendor_name}`"),
            };
            for policy in &store_zone.vendor_policies {
                let accepted = policy_accepts(policy, |entry| {
                    entry == vendor_name || cloud.as_deref() == Some(entry)
                });
                if !accepted {
                    self.push(
                        Diagnostic::new(
                            &codes::VENDOR_POLICY,
                            sink.span.clone(),
                            format!(
                                "datastore `{}` of zone `{}` may not be ingested on {vendor_what}, by platform `{}` for `{}.{}`: vendor_policy `{}` refuses it",
                                store.store.name.value, store_zone.name.value, dp.platform.name.value, ws.name.value, group.name.value,
                                policy.name.as_ref().map_or("", |n| n.as_str())
                            ),
                        )
                        .with_label(location.span.clone(), "the platform's location")
                        .with_label(policy.span.clone(), "the policy")
                        .with_help("serve this group from a platform on an allowed vendor, or change the policy"),
                    );
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn classification_policy(
        &mut self,
        ws: &Workspace,
        sink: &Sink,
        store: StoreRef<'m>,
        dataset: &Dataset,
        policy: &Policy,
        code: &Code,
        policy_what: &str,
    ) {
        let entries = |list: &[Spanned<String>]| -> Vec<Classification> {
            list.iter()
                .filter_map(|e| Classification::parse(&e.value))
                .collect()
        };
        let allowed = policy.allowed.as_deref().map(entries);
        let refused = entries(&policy.not_allowed);
        for classification in dataset.all_classifications() {
            let c = &classification.value;
            let ok = allowed
                .as_ref()
                .is_none_or(|a| a.iter().any(|e| c.matches(e)))
                && !refused.iter().any(|e| c.matches(e));
            if !ok {
                self.push(
                    Diagnostic::new(
                        code,
                        sink.span.clone(),
                        format!(
                            "workspace `{}` consumes dataset `{}.{}`, classified `{c}`, which {policy_what} refuses",
                            ws.name.value, store.store.name.value, dataset.name.value
                        ),
                    )
                    .with_label(classification.span.clone(), "classified here")
                    .with_label(policy.span.clone(), "the policy")
                    .with_help("consume a dataset this policy accepts, or change the policy"),
                );
                return;
            }
        }
    }

    fn transformer(&mut self, team: &'m Team, ws: &'m Workspace, transformer: &'m Transformer) {
        let what = format!(
            "transformer `{}` of workspace `{}`",
            transformer.name.value, ws.name.value
        );
        match transformer.outputs.len() {
            1 => {}
            0 => self.error(
                &codes::TRANSFORMER_OUTPUT,
                transformer.span.clone(),
                format!("{what} has no `output` store"),
                Some("add `output \"<store>\" { dataset \"<name>\" { table { ... } } }`".into()),
            ),
            _ => self.error(
                &codes::TRANSFORMER_OUTPUT,
                transformer.outputs[1].span.clone(),
                format!("{what} has more than one `output` store"),
                Some("a transformer fills one store; put several datasets in it".into()),
            ),
        }
        for output in &transformer.outputs {
            let defs = self.index.stores.get(&output.name.key());
            let other_team = defs
                .into_iter()
                .flatten()
                .find(|def| !std::ptr::eq(def.team, team));
            if let Some(owner) = other_team.copied() {
                self.push(
                    Diagnostic::new(
                        &codes::TRANSFORMER_OUTPUT,
                        output.name.span.clone(),
                        format!(
                            "{what} outputs to datastore `{}`, which belongs to team `{}`, not to team `{}`",
                            output.name.value, owner.team.name.value, team.name.value
                        ),
                    )
                    .with_label(owner.store.name.span.clone(), "the other team's store")
                    .with_help("a transformer fills a store of its own team: choose a new store name"),
                );
            }
        }
        for placeholder in &transformer.inputs {
            let span = placeholder.span.clone();
            match &placeholder.value {
                Err(why) => self.error(
                    &codes::TRANSFORMER_INPUT,
                    span,
                    format!("{what}: {why}"),
                    None,
                ),
                Ok(input) => {
                    let group = ws
                        .groups
                        .iter()
                        .find(|g| g.name.value.eq_ignore_ascii_case(&input.group));
                    let Some(group) = group else {
                        let help = match did_you_mean(
                            &input.group,
                            ws.groups.iter().map(|g| g.name.as_str()),
                        ) {
                            Some(close) => format!("did you mean `{close}`?"),
                            None => format!(
                                "the groups of workspace `{}` are {}",
                                ws.name.value,
                                names_list(ws.groups.iter().map(|g| g.name.as_str()))
                            ),
                        };
                        self.error(
                            &codes::TRANSFORMER_INPUT,
                            span,
                            format!("{what} reads `{{{{ input \"{}\" ... }}}}`, but its workspace has no dataset group `{}`", input.group, input.group),
                            Some(help),
                        );
                        continue;
                    };
                    let has_sink = group.sinks.iter().any(|s| {
                        s.store.value.eq_ignore_ascii_case(&input.store)
                            && s.dataset.value.eq_ignore_ascii_case(&input.dataset)
                    });
                    if !has_sink {
                        self.push(
                            Diagnostic::new(
                                &codes::TRANSFORMER_INPUT,
                                span,
                                format!(
                                    "{what} reads `{}.{}` through group `{}`, which has no sink for it",
                                    input.store, input.dataset, group.name.value
                                ),
                            )
                            .with_label(group.name.span.clone(), "the group")
                            .with_help(format!("add `sink \"{}\" \"{}\" {{}}` to the group, or fix the reference", input.store, input.dataset)),
                        );
                    }
                }
            }
        }
    }

    fn transformer_cycles(&mut self) {
        // Edge: the workspace of a transformer → the transformer workspaces consuming its output.
        let model = self.model;
        let mut transformer_ws: Vec<&'m Workspace> = Vec::new();
        for team in &model.teams {
            for ws in &team.workspaces {
                if !ws.transformers.is_empty() {
                    transformer_ws.push(ws);
                }
            }
        }
        let position: HashMap<String, usize> = transformer_ws
            .iter()
            .enumerate()
            .map(|(i, ws)| (ws.name.key(), i))
            .collect();
        // inputs[i]: the transformer workspaces whose output workspace i consumes.
        let inputs: Vec<Vec<usize>> = transformer_ws
            .iter()
            .map(|ws| {
                let mut from: Vec<usize> = ws
                    .groups
                    .iter()
                    .flat_map(|g| g.sinks.iter())
                    .filter_map(|s| self.index.store(&s.store.value))
                    .filter_map(|s| s.transformer)
                    .filter_map(|(producer, _)| position.get(&producer.name.key()).copied())
                    .collect();
                from.sort_unstable();
                from.dedup();
                from
            })
            .collect();
        // Depth-first search for a back edge; report each cycle once, at its smallest member.
        let mut state = vec![0u8; transformer_ws.len()]; // 0 new, 1 on stack, 2 done
        let mut stack: Vec<usize> = Vec::new();
        let mut reported: Vec<Vec<usize>> = Vec::new();
        fn visit(
            node: usize,
            inputs: &[Vec<usize>],
            state: &mut [u8],
            stack: &mut Vec<usize>,
            cycles: &mut Vec<Vec<usize>>,
        ) {
            state[node] = 1;
            stack.push(node);
            for &next in &inputs[node] {
                match state[next] {
                    0 => visit(next, inputs, state, stack, cycles),
                    1 => {
                        let start = stack.iter().position(|&n| n == next).unwrap_or(0);
                        let mut cycle = stack[start..].to_vec();
                        let min = cycle
                            .iter()
                            .enumerate()
                            .min_by_key(|(_, n)| **n)
                            .map_or(0, |(i, _)| i);
                        cycle.rotate_left(min);
                        if !cycles.contains(&cycle) {
                            cycles.push(cycle);
                        }
                    }
                    _ => {}
                }
            }
            stack.pop();
            state[node] = 2;
        }
        for node in 0..transformer_ws.len() {
            if state[node] == 0 {
                visit(node, &inputs, &mut state, &mut stack, &mut reported);
            }
        }
        for cycle in reported {
            // The cycle runs against the data flow (consumer → producer); show it along the flow.
            let mut names: Vec<String> = cycle
                .iter()
                .rev()
                .map(|&i| {
                    let ws = transformer_ws[i];
                    format!(
                        "`{}` (workspace `{}`)",
                        ws.transformers[0].name.value, ws.name.value
                    )
                })
                .collect();
            names.push(names[0].clone());
            let first = transformer_ws[cycle[0]];
            self.error(
                &codes::TRANSFORMER_CYCLE,
                first.transformers[0].span.clone(),
                format!("transformers feed each other in a cycle: {}", names.join(" → ")),
                Some("a transformer may not consume, directly or through others, its own output: break the cycle".into()),
            );
        }
    }

    // ---- rules 15 and 18: locations and platforms ----

    /// Whether `Vendor:Path/Sub` names a location in a vendor's tree; reports it when not.
    fn known_location(&mut self, location: &Spanned<String>, owner: &str) {
        if self.model.ecosystems.is_empty() {
            // Vendors live in the ecosystem; its absence is reported once, not once per location.
            return;
        }
        let text = &location.value;
        let Some((vendor_name, path)) = text.split_once(':') else {
            self.error(
                &codes::UNKNOWN_LOCATION,
                location.span.clone(),
                format!("location `{text}` of {owner} is not of the form `Vendor:Path/Sub`"),
                Some(
                    "write the vendor, a colon, then the location path, for example `Acme:USA/NY`"
                        .into(),
                ),
            );
            return;
        };
        let Some(vendor) = self.index.vendors.get(vendor_name).copied() else {
            let help = match did_you_mean(vendor_name, self.index.vendors.keys().copied()) {
                Some(close) => format!("did you mean `{close}`?"),
                None => "declare the vendor in the ecosystem: `vendor \"<name>\" { cloud = \"PRIVATE\" ... }`".into(),
            };
            self.error(
                &codes::UNKNOWN_LOCATION,
                location.span.clone(),
                format!("location `{text}` of {owner} names vendor `{vendor_name}`, which is not declared"),
                Some(help),
            );
            return;
        };
        let mut level = &vendor.locations;
        for (depth, part) in path.split('/').enumerate() {
            match level.iter().find(|l| l.name.value == part) {
                Some(found) => level = &found.locations,
                None => {
                    let help = match did_you_mean(part, level.iter().map(|l| l.name.as_str())) {
                        Some(close) => format!("did you mean `{close}`?"),
                        None if level.is_empty() => "the location tree ends above it: declare it with a nested `location` block".into(),
                        None => format!("the locations there are {}", names_list(level.iter().map(|l| l.name.as_str()))),
                    };
                    let prefix: Vec<&str> = path.split('/').take(depth).collect();
                    self.error(
                        &codes::UNKNOWN_LOCATION,
                        location.span.clone(),
                        format!(
                            "location `{text}` of {owner}: vendor `{vendor_name}` has no location `{part}`{}",
                            if prefix.is_empty() {
                                String::new()
                            } else {
                                format!(" under `{}`", prefix.join("/"))
                            }
                        ),
                        Some(help),
                    );
                    return;
                }
            }
        }
    }

    fn platforms(&mut self) {
        let model = self.model;
        for zone in &model.zones {
            for policy in &zone.location_policies {
                let owner = format!(
                    "location_policy `{}` of zone `{}`",
                    policy.name.as_ref().map_or("", |n| n.as_str()),
                    zone.name.value
                );
                for entry in policy.allowed.iter().flatten().chain(&policy.not_allowed) {
                    self.known_location(entry, &owner);
                }
            }
            for policy in &zone.vendor_policies {
                for entry in policy.allowed.iter().flatten().chain(&policy.not_allowed) {
                    if !self.index.vendors.contains_key(entry.value.as_str())
                        && !CLOUDS.contains(&entry.value.as_str())
                    {
                        self.error(
                            &codes::UNKNOWN_LOCATION,
                            entry.span.clone(),
                            format!("vendor_policy of zone `{}` names `{}`, which is neither a declared vendor nor a cloud", zone.name.value, entry.value),
                            Some(format!("name a vendor of the ecosystem or one of {}", names_list(CLOUDS.iter().copied()))),
                        );
                    }
                }
            }
            for policy in &zone.data_platform_policies {
                for entry in policy.allowed.iter().flatten().chain(&policy.not_allowed) {
                    if !self
                        .index
                        .data_platforms
                        .contains_key(&entry.value.to_ascii_lowercase())
                    {
                        let help = match did_you_mean(
                            &entry.value,
                            self.index
                                .data_platforms
                                .values()
                                .map(|d| d.data_platform.name.as_str()),
                        ) {
                            Some(close) => format!("did you mean `{close}`?"),
                            None => "name a `data_platform` of a platform block".into(),
                        };
                        self.error(
                            &codes::UNKNOWN_DATA_PLATFORM,
                            entry.span.clone(),
                            format!("data_platform_policy of zone `{}` names data platform `{}`, which does not exist", zone.name.value, entry.value),
                            Some(help),
                        );
                    }
                }
            }
        }
        // Which platforms ingest cdc or kafka stores (for the kafka_connect check).
        let mut streaming: HashMap<*const Platform, (&'m Sink, CaptureKind)> = HashMap::new();
        for team in &model.teams {
            for ws in &team.workspaces {
                for group in &ws.groups {
                    let Resolution::Resolved(dp) = resolve_group(model, &self.index, ws, group)
                    else {
                        continue;
                    };
                    for sink in &group.sinks {
                        let kind = self
                            .index
                            .store(&sink.store.value)
                            .and_then(|s| s.capture_kind());
                        if let Some(kind @ (CaptureKind::Cdc | CaptureKind::Kafka)) = kind {
                            streaming
                                .entry(std::ptr::from_ref(dp.platform))
                                .or_insert((sink, kind));
                        }
                    }
                }
            }
        }
        for platform in &model.platforms {
            let what = format!("platform `{}`", platform.name.value);
            for location in &platform.locations {
                self.known_location(location, &what);
            }
            if platform.merge_db.is_none() {
                self.error(
                    &codes::MISSING_MERGE_DB,
                    platform.span.clone(),
                    format!("{what} has no `merge_db` block"),
                    Some("add `merge_db { host = ..., port = 5432, database = ..., credential = ... }`: every data platform merges there".into()),
                );
            }
            if platform.kafka_connect.is_none()
                && let Some((sink, kind)) = streaming.get(&std::ptr::from_ref(platform))
            {
                self.push(
                    Diagnostic::new(
                        &codes::MISSING_KAFKA_CONNECT,
                        platform.span.clone(),
                        format!("{what} ingests {} datastore `{}` but has no `kafka_connect` block", kind.as_str(), sink.store.value),
                    )
                    .with_label(sink.span.clone(), "consumed here")
                    .with_help("add `kafka_connect { url = \"http://...:8083\", bootstrap_servers = \"...:9092\" }`"),
                );
            }
            let buckets: Vec<&str> = platform
                .object_store
                .iter()
                .flat_map(|o| o.buckets.iter().map(|b| b.name.as_str()))
                .collect();
            for dp in &platform.data_platforms {
                if let Some(bucket) = &dp.archive_bucket {
                    self.bucket_exists(
                        platform,
                        &buckets,
                        bucket,
                        &format!("`archive_bucket` of data platform `{}`", dp.name.value),
                    );
                }
            }
            if let Some(credentials) = &platform.credentials
                && let CredentialSource::Directory(None) = credentials.value
            {
                self.error(
                    &codes::CREDENTIALS_SOURCE,
                    credentials.span.clone(),
                    format!("`credentials` of {what} reads a directory but names no `path`"),
                    Some("write `{ kind = \"directory\", path = \"/etc/ds/credentials\" }`".into()),
                );
            }
            if let Some(state) = &platform.state {
                self.state_backend(platform, &buckets, state);
            }
        }
    }

    fn bucket_exists(
        &mut self,
        platform: &Platform,
        buckets: &[&str],
        bucket: &Spanned<String>,
        what: &str,
    ) {
        if buckets.contains(&bucket.value.as_str()) {
            return;
        }
        let help = if platform.object_store.is_none() {
            "the platform has no `object_store`: add one with this bucket".to_string()
        } else {
            match did_you_mean(&bucket.value, buckets.iter().copied()) {
                Some(close) => format!("did you mean `{close}`?"),
                None => format!(
                    "add `bucket \"{}\" {{}}` to the platform's object_store",
                    bucket.value
                ),
            }
        };
        self.error(
            &codes::UNKNOWN_BUCKET,
            bucket.span.clone(),
            format!(
                "{what} names bucket `{}`, which platform `{}` does not define",
                bucket.value, platform.name.value
            ),
            Some(help),
        );
    }

    fn state_backend(&mut self, platform: &Platform, buckets: &[&str], state: &StateBackend) {
        let what = format!("`state` of platform `{}`", platform.name.value);
        let Some(backend) = &state.backend else {
            if !self.diags.iter().any(|d| {
                d.span == state.span
                    || state.span.range.contains(&d.span.range.start)
                        && d.span.file == state.span.file
            }) {
                self.error(
                    &codes::STATE_BACKEND,
                    state.span.clone(),
                    format!("{what} has no `backend`"),
                    Some("write `{ backend = \"local\", path = \".ds/state.json\" }`, `{ backend = \"postgres\" }` or `{ backend = \"s3\", bucket = ..., key = ... }`".into()),
                );
            }
            return;
        };
        let (needs, refuses): (&[&str], &[&str]) = match backend.value.as_str() {
            "local" => (&["path"], &["bucket", "key"]),
            "postgres" => (&[], &["path", "bucket", "key"]),
            _ => (&["bucket", "key"], &["path"]),
        };
        let value = |name: &str| match name {
            "path" => state.path.as_ref(),
            "bucket" => state.bucket.as_ref(),
            _ => state.key.as_ref(),
        };
        for name in needs {
            if value(name).is_none() {
                self.error(
                    &codes::STATE_BACKEND,
                    state.span.clone(),
                    format!("{what}: the {} backend needs `{name}`", backend.value),
                    Some(match *name {
                        "path" => "add `path = \".ds/state.json\"`".to_string(),
                        "bucket" => "add `bucket = \"<bucket of this platform>\"`".to_string(),
                        _ => "add `key = \"ds/state.json\"`".to_string(),
                    }),
                );
            }
        }
        for name in refuses {
            if let Some(v) = value(name) {
                self.error(
                    &codes::STATE_BACKEND,
                    v.span.clone(),
                    format!(
                        "{what}: `{name}` does not apply to the {} backend",
                        backend.value
                    ),
                    Some(format!("remove `{name}`")),
                );
            }
        }
        if backend.value == "postgres" && platform.merge_db.is_none() {
            self.error(
                &codes::STATE_BACKEND,
                backend.span.clone(),
                format!("{what}: the postgres backend keeps state in the merge database, and the platform has none"),
                Some("add a `merge_db` block, or use another backend".into()),
            );
        }
        if backend.value == "s3"
            && let Some(bucket) = &state.bucket
        {
            self.bucket_exists(platform, buckets, bucket, &what);
        }
    }
}

/// The items whose key repeats an earlier item's, each with the first item of that key.
fn repeated<T>(items: &[T], key: impl Fn(&T) -> (String, String)) -> Vec<(&T, &T)> {
    let mut first: HashMap<(String, String), &T> = HashMap::new();
    let mut out = Vec::new();
    for item in items {
        match first.entry(key(item)) {
            std::collections::hash_map::Entry::Occupied(e) => out.push((*e.get(), item)),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(item);
            }
        }
    }
    out
}

/// Whether an allow/deny list accepts an item, given how an entry matches it.
fn policy_accepts(policy: &Policy, matches: impl Fn(&str) -> bool) -> bool {
    policy
        .allowed
        .as_ref()
        .is_none_or(|a| a.iter().any(|e| matches(&e.value)))
        && !policy.not_allowed.iter().any(|e| matches(&e.value))
}

/// Whether location `loc` is `area` or inside it (`Acme:USA/NY` is within `Acme:USA`).
fn location_within(loc: &str, area: &str) -> bool {
    loc == area || (loc.starts_with(area) && (loc.as_bytes().get(area.len()) == Some(&b'/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_nest() {
        assert!(location_within("Acme:USA/NY", "Acme:USA"));
        assert!(location_within("Acme:USA", "Acme:USA"));
        assert!(!location_within("Acme:USAX", "Acme:USA"));
        assert!(!location_within("Acme:USA", "Acme:USA/NY"));
    }
}
