//! `cargo xtask gen-model`: writes a large, valid, deterministic model for benchmarks.
//!
//! The model follows `shared/design/model-language.md` (validation rules 1–18) and aims to produce no
//! warnings either. Shape:
//!
//! - `ecosystem.ds.hcl`: the ecosystem (vendor `Acme`, PRIVATE, locations `USA/NY` and `USA/NJ`), one
//!   zone declaration per zone, the `bench` platform with a `LIVE_ONLY` and a `FORENSIC` data platform,
//!   and a few explicit `assignment`s.
//! - `zone_<k>.ds.hcl`: one `zone` block each, declaring its teams and a few policies that every
//!   generated object satisfies.
//! - `team_<t>.ds.hcl` (or `teams_<f>.ds.hcl` with `--files`): the `team` blocks with their datastores
//!   and workspaces. Teams own [`STORES_PER_TEAM`] consecutive stores each, so the number of teams and
//!   files grows linearly with the number of stores.
//!
//! Everything is derived from the indices with fixed arithmetic: the same arguments give byte-identical
//! files.

use std::collections::BTreeSet;
use std::fmt::{self, Write as _};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::args::Flags;

/// Consecutive stores owned by one team.
const STORES_PER_TEAM: usize = 25;
/// The most zones a model has (fewer when there are fewer teams).
const MAX_ZONES: usize = 4;
/// The only location of the platform, and the one the zones' location policies allow.
const LOCATION: &str = "Acme:USA/NY";
/// Data platform names.
const DP_LIVE: &str = "zero_live";
const DP_FORENSIC: &str = "zero_forensic";
/// The platform's object-store bucket (the forensic data platform archives into it).
const BUCKET: &str = "ds_archive";

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Params {
    /// Number of datastores.
    pub(crate) stores: usize,
    /// Datasets in each store.
    pub(crate) datasets_per_store: usize,
    /// Number of workspaces.
    pub(crate) workspaces: usize,
    /// Group the team blocks into this many files (`None`: one file per team).
    pub(crate) files: Option<usize>,
}

/// One generated `*.ds.hcl` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GeneratedFile {
    /// File name (no directory).
    pub(crate) name: String,
    /// HCL text.
    pub(crate) contents: String,
}

/// What `generate_into` wrote.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Summary {
    pub(crate) files: usize,
    pub(crate) stores: usize,
    pub(crate) datasets: usize,
    pub(crate) workspaces: usize,
    pub(crate) bytes: u64,
}

/// `cargo xtask gen-model ...`
pub(crate) fn cli(args: &[String]) -> Result<(), String> {
    let flags = Flags::parse(
        args,
        &["out", "stores", "datasets-per-store", "workspaces", "files"],
        &[],
    )?;
    let out: PathBuf = flags.required("out")?;
    let params = Params {
        stores: flags.required("stores")?,
        datasets_per_store: flags.required("datasets-per-store")?,
        workspaces: flags.required("workspaces")?,
        files: flags.parsed("files")?,
    };
    let started = Instant::now();
    let summary = generate_into(&out, &params)?;
    println!(
        "gen-model: {} files, {} stores, {} datasets, {} workspaces, {} bytes in {} ({} ms)",
        summary.files,
        summary.stores,
        summary.datasets,
        summary.workspaces,
        summary.bytes,
        out.display(),
        started.elapsed().as_millis()
    );
    Ok(())
}

/// Generates the model for `params` and writes it into `dir` (created; its `*.ds.hcl` files are removed
/// first).
pub(crate) fn generate_into(dir: &Path, params: &Params) -> Result<Summary, String> {
    let files = generate(params)?;
    let bytes = write_files(dir, &files)?;
    Ok(Summary {
        files: files.len(),
        stores: params.stores,
        datasets: params.stores * params.datasets_per_store,
        workspaces: params.workspaces,
        bytes,
    })
}

/// Generates the model's files in memory.
pub(crate) fn generate(params: &Params) -> Result<Vec<GeneratedFile>, String> {
    let layout = Layout::new(params)?;
    layout
        .files()
        .map_err(|e| format!("formatting the model failed: {e}"))
}

/// Creates `dir`, removes the `*.ds.hcl` files directly in it, writes `files`; returns the bytes written.
fn write_files(dir: &Path, files: &[GeneratedFile]) -> Result<u64, String> {
    let ctx =
        |what: &str, path: &Path, e: std::io::Error| format!("{what} {}: {e}", path.display());
    fs::create_dir_all(dir).map_err(|e| ctx("cannot create", dir, e))?;
    let entries = fs::read_dir(dir).map_err(|e| ctx("cannot list", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| ctx("cannot list", dir, e))?;
        let path = entry.path();
        let is_model_file = entry.file_name().to_string_lossy().ends_with(".ds.hcl");
        if is_model_file && path.is_file() {
            fs::remove_file(&path).map_err(|e| ctx("cannot remove", &path, e))?;
        }
    }
    let mut bytes = 0u64;
    for file in files {
        let path = dir.join(&file.name);
        fs::write(&path, &file.contents).map_err(|e| ctx("cannot write", &path, e))?;
        bytes += file.contents.len() as u64;
    }
    Ok(bytes)
}

/// How a store is captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Snapshot,
    Cdc,
    Watermark,
}

impl Kind {
    /// 60% `sql_snapshot`, 20% `cdc`, 20% `sql_watermark`.
    fn of_store(i: usize) -> Kind {
        match i % 10 {
            3 | 7 => Kind::Cdc,
            5 | 9 => Kind::Watermark,
            _ => Kind::Snapshot,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Kind::Snapshot => "sql_snapshot",
            Kind::Cdc => "cdc",
            Kind::Watermark => "sql_watermark",
        }
    }
}

/// A column of a generated table.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Column {
    name: &'static str,
    ty: String,
    not_null: bool,
    primary_key: bool,
    doc: Option<&'static str>,
}

impl Column {
    fn new(name: &'static str, ty: impl Into<String>) -> Column {
        Column {
            name,
            ty: ty.into(),
            not_null: false,
            primary_key: false,
            doc: None,
        }
    }

    fn not_null(mut self) -> Column {
        self.not_null = true;
        self
    }

    fn primary_key(mut self) -> Column {
        self.primary_key = true;
        self.not_null = true;
        self
    }

    fn doc(mut self, doc: &'static str) -> Column {
        self.doc = Some(doc);
        self
    }
}

/// A dataset group of a workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Group {
    name: &'static str,
    milestoning: &'static str,
    latency: &'static str,
    /// `(store index, dataset index)`, unique within the group.
    sinks: Vec<(usize, usize)>,
}

impl Group {
    fn data_platform(&self) -> &'static str {
        if self.milestoning == "FORENSIC" {
            DP_FORENSIC
        } else {
            DP_LIVE
        }
    }
}

/// The model's shape, derived from [`Params`]; every name and attribute is a function of indices.
#[derive(Debug, Clone)]
struct Layout {
    params: Params,
    teams: usize,
    zones: usize,
    store_width: usize,
    dataset_width: usize,
    workspace_width: usize,
    team_width: usize,
}

/// Digits needed to print every index below `count`, at least `min`.
fn width(count: usize, min: usize) -> usize {
    let mut digits = 1;
    let mut rest = count.saturating_sub(1) / 10;
    while rest > 0 {
        digits += 1;
        rest /= 10;
    }
    digits.max(min)
}

impl Layout {
    fn new(params: &Params) -> Result<Layout, String> {
        if params.stores == 0 {
            return Err("`--stores` must be at least 1".into());
        }
        if params.datasets_per_store == 0 {
            return Err("`--datasets-per-store` must be at least 1".into());
        }
        if params.files == Some(0) {
            return Err("`--files` must be at least 1".into());
        }
        if params
            .stores
            .checked_mul(params.datasets_per_store)
            .is_none()
        {
            return Err("too many datasets".into());
        }
        let teams = params.stores.div_ceil(STORES_PER_TEAM);
        Ok(Layout {
            params: *params,
            teams,
            zones: teams.min(MAX_ZONES),
            store_width: width(params.stores, 5),
            dataset_width: width(params.datasets_per_store, 3),
            workspace_width: width(params.workspaces, 5),
            team_width: width(teams, 3),
        })
    }

    fn store_name(&self, i: usize) -> String {
        format!("store_{i:0w$}", w = self.store_width)
    }

    fn dataset_name(&self, d: usize) -> String {
        format!("ds_{d:0w$}", w = self.dataset_width)
    }

    fn workspace_name(&self, w: usize) -> String {
        format!("ws_{w:0width$}", width = self.workspace_width)
    }

    fn team_name(&self, t: usize) -> String {
        format!("team_{t:0w$}", w = self.team_width)
    }

    fn zone_name(z: usize) -> String {
        format!("zone_{z}")
    }

    fn team_zone(&self, t: usize) -> usize {
        t % self.zones
    }

    /// The stores team `t` owns: a non-empty run of consecutive indices.
    fn team_stores(&self, t: usize) -> std::ops::Range<usize> {
        t * STORES_PER_TEAM..((t + 1) * STORES_PER_TEAM).min(self.params.stores)
    }

    /// The workspaces team `t` owns (round-robin).
    fn team_workspaces(&self, t: usize) -> impl Iterator<Item = usize> + use<> {
        (t..self.params.workspaces).step_by(self.teams)
    }

    /// Every `(store, dataset)` workspace `w` consumes, without repeats.
    ///
    /// With `W <= N` workspaces, workspace `w` reads the stores `i` with `i % W == w` (so every store is
    /// consumed), two datasets of each; every workspace also reads `ds_0` of one of the first ten stores
    /// (shared reference data, so some datasets fan out to many consumers).
    fn sinks(&self, w: usize) -> Vec<(usize, usize)> {
        let (n, m, ws) = (
            self.params.stores,
            self.params.datasets_per_store,
            self.params.workspaces,
        );
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        let mut push = |pair: (usize, usize)| {
            if seen.insert(pair) {
                out.push(pair);
            }
        };
        if ws <= n {
            for i in (w..n).step_by(ws) {
                // `i / ws` counts this workspace's stores: it varies the datasets picked.
                let d = (i + i / ws) % m;
                push((i, d));
                if m >= 2 {
                    push((i, (d + m / 2) % m));
                }
            }
        } else {
            push((w % n, w % m));
        }
        push((w % n.min(10), 0));
        out
    }

    /// The dataset groups of workspace `w`: one or two, each with at least one sink.
    fn groups(&self, w: usize) -> Vec<Group> {
        let sinks = self.sinks(w);
        if sinks.len() >= 2 && w % 3 != 2 {
            let (mut live, mut hist) = (Vec::new(), Vec::new());
            for (k, sink) in sinks.into_iter().enumerate() {
                if k.is_multiple_of(2) {
                    live.push(sink);
                } else {
                    hist.push(sink);
                }
            }
            vec![
                Group {
                    name: "grp_live",
                    milestoning: "LIVE_ONLY",
                    latency: "MINUTES",
                    sinks: live,
                },
                Group {
                    name: "grp_hist",
                    milestoning: "FORENSIC",
                    latency: "HOURS",
                    sinks: hist,
                },
            ]
        } else if w.is_multiple_of(2) {
            vec![Group {
                name: "grp_live",
                milestoning: "LIVE_ONLY",
                latency: "SECONDS",
                sinks,
            }]
        } else {
            vec![Group {
                name: "grp_hist",
                milestoning: "FORENSIC",
                latency: "DAYS",
                sinks,
            }]
        }
    }

    /// The columns of dataset `d` of store `i`: `id` (primary key), a varchar, a decimal, `updated_at`,
    /// a boolean, one more of a rotating type, and sometimes `notes` and a `region` partition column.
    fn columns(&self, i: usize, d: usize) -> Vec<Column> {
        let seed = i * 31 + d * 7;
        let watermark = Kind::of_store(i) == Kind::Watermark;
        let id_type = if seed.is_multiple_of(4) {
            "bigint"
        } else {
            "integer"
        };
        let mut cols = vec![
            Column::new("id", id_type).primary_key(),
            Column::new("name", format!("varchar({})", 40 + (seed % 8) * 20)),
            Column::new("amount", format!("decimal({},{})", 10 + seed % 9, seed % 5)),
        ];
        let updated_at = Column::new("updated_at", "timestamp");
        cols.push(if watermark {
            updated_at.not_null()
        } else {
            updated_at
        });
        cols.push(Column::new("active", "boolean"));
        cols.push(match (i + d) % 8 {
            0 => Column::new("created_on", "date"),
            1 => Column::new("ref_id", "uuid"),
            2 => Column::new("payload", "json"),
            3 => Column::new("score", "double"),
            4 => Column::new("qty", "smallint"),
            5 => Column::new("ratio", "real"),
            6 => Column::new("seen_at", "timestamptz"),
            _ => Column::new("blob", "bytea"),
        });
        if d % 2 == 1 {
            cols.push(Column::new("notes", "text").doc("Free-form notes."));
        }
        if d % 4 == 3 {
            cols.push(Column::new("region", "char(2)").not_null());
        }
        cols
    }

    /// All files of the model.
    fn files(&self) -> Result<Vec<GeneratedFile>, fmt::Error> {
        let mut files = vec![GeneratedFile {
            name: "ecosystem.ds.hcl".into(),
            contents: self.ecosystem_file()?,
        }];
        for z in 0..self.zones {
            files.push(GeneratedFile {
                name: format!("{}.ds.hcl", Self::zone_name(z)),
                contents: self.zone_file(z)?,
            });
        }
        match self.params.files {
            None => {
                for t in 0..self.teams {
                    let mut contents = header("one team");
                    self.team_block(&mut contents, t)?;
                    files.push(GeneratedFile {
                        name: format!("{}.ds.hcl", self.team_name(t)),
                        contents,
                    });
                }
            }
            Some(requested) => {
                let count = requested.min(self.teams);
                let file_width = width(count, 2);
                for f in 0..count {
                    let mut contents = header("a group of teams");
                    let teams = f * self.teams / count..(f + 1) * self.teams / count;
                    for (k, t) in teams.enumerate() {
                        if k > 0 {
                            contents.push('\n');
                        }
                        self.team_block(&mut contents, t)?;
                    }
                    files.push(GeneratedFile {
                        name: format!("teams_{f:0file_width$}.ds.hcl"),
                        contents,
                    });
                }
            }
        }
        Ok(files)
    }

    fn ecosystem_file(&self) -> Result<String, fmt::Error> {
        let p = &self.params;
        let mut s = header("the ecosystem, its platform and assignments");
        writeln!(s, "ecosystem \"bench\" {{")?;
        writeln!(s, "  owning_repo = {}", repo("acme/ecosystem"))?;
        writeln!(s, "  documentation {{")?;
        writeln!(
            s,
            "    markdown = \"Benchmark ecosystem: {} stores x {} datasets, {} workspaces.\"",
            p.stores, p.datasets_per_store, p.workspaces
        )?;
        writeln!(
            s,
            "    tags     = {{ generator = \"cargo xtask gen-model\" }}"
        )?;
        writeln!(s, "  }}")?;
        writeln!(s, "  vendor \"Acme\" {{")?;
        writeln!(s, "    cloud = \"PRIVATE\"")?;
        writeln!(
            s,
            "    documentation {{ text = \"Acme's private data centres.\" }}"
        )?;
        writeln!(s, "    location \"USA\" {{")?;
        writeln!(s, "      location \"NY\" {{}}")?;
        writeln!(s, "      location \"NJ\" {{}}")?;
        writeln!(s, "    }}")?;
        writeln!(s, "  }}")?;
        for z in 0..self.zones {
            let zone = Self::zone_name(z);
            writeln!(
                s,
                "  zone_declaration \"{zone}\" {{ owning_repo = {} }}",
                repo(&format!("acme/{zone}"))
            )?;
        }
        writeln!(s, "}}")?;
        writeln!(s)?;
        writeln!(s, "platform \"bench\" {{")?;
        writeln!(s, "  locations = [\"{LOCATION}\"]")?;
        writeln!(s, "  merge_db {{")?;
        writeln!(s, "    host       = \"127.0.0.1\"")?;
        writeln!(s, "    port       = 5432")?;
        writeln!(s, "    database   = \"datasurface\"")?;
        writeln!(s, "    credential = \"merge_rw\"")?;
        writeln!(s, "  }}")?;
        writeln!(s, "  kafka_connect {{")?;
        writeln!(s, "    url               = \"http://127.0.0.1:8083\"")?;
        writeln!(s, "    bootstrap_servers = \"127.0.0.1:9092\"")?;
        writeln!(s, "    credential        = \"connect\"")?;
        writeln!(s, "  }}")?;
        writeln!(s, "  object_store {{")?;
        writeln!(s, "    endpoint   = \"http://127.0.0.1:9000\"")?;
        writeln!(s, "    region     = \"us-east-1\"")?;
        writeln!(s, "    credential = \"object_store\"")?;
        writeln!(s, "    bucket \"{BUCKET}\" {{")?;
        writeln!(s, "      versioning = true")?;
        writeln!(s, "      lifecycle  = {{ expire_after_days = 365 }}")?;
        writeln!(s, "      tags       = {{ purpose = \"archive\" }}")?;
        writeln!(s, "    }}")?;
        writeln!(s, "  }}")?;
        writeln!(s, "  credentials = {{ kind = \"env\" }}")?;
        writeln!(
            s,
            "  state       = {{ backend = \"local\", path = \".ds/state.json\" }}"
        )?;
        writeln!(s, "  data_platform \"{DP_LIVE}\" {{")?;
        writeln!(s, "    milestoning             = \"LIVE_ONLY\"")?;
        writeln!(s, "    staging_batches_to_keep = 5")?;
        writeln!(s, "  }}")?;
        writeln!(s, "  data_platform \"{DP_FORENSIC}\" {{")?;
        writeln!(s, "    milestoning             = \"FORENSIC\"")?;
        writeln!(s, "    staging_batches_to_keep = -1")?;
        writeln!(s, "    archive_bucket          = \"{BUCKET}\"")?;
        writeln!(s, "  }}")?;
        writeln!(s, "}}")?;
        // Explicit assignments for every tenth workspace's first group, naming the data platform the
        // group's milestoning would pick anyway.
        for w in (0..p.workspaces).step_by(10) {
            let groups = self.groups(w);
            let group = &groups[0];
            writeln!(s)?;
            writeln!(
                s,
                "assignment \"{}\" \"{}\" {{ data_platform = \"{}\" }}",
                self.workspace_name(w),
                group.name,
                group.data_platform()
            )?;
        }
        Ok(s)
    }

    fn zone_file(&self, z: usize) -> Result<String, fmt::Error> {
        let mut s = header("one zone");
        writeln!(s, "zone \"{}\" {{", Self::zone_name(z))?;
        writeln!(s, "  documentation {{ text = \"Benchmark zone {z}.\" }}")?;
        for t in (z..self.teams).step_by(self.zones) {
            let team = self.team_name(t);
            writeln!(
                s,
                "  team_declaration \"{team}\" {{ owning_repo = {} }}",
                repo(&format!("acme/{team}"))
            )?;
        }
        writeln!(
            s,
            "  classification_policy \"public_only\" {{ allowed = [\"PUB\"] }}"
        )?;
        writeln!(
            s,
            "  location_policy \"new_york\" {{ allowed = [\"{LOCATION}\"] }}"
        )?;
        writeln!(
            s,
            "  data_platform_policy \"zero\" {{ allowed = [\"{DP_LIVE}\", \"{DP_FORENSIC}\"] }}"
        )?;
        writeln!(s, "}}")?;
        Ok(s)
    }

    fn team_block(&self, s: &mut String, t: usize) -> fmt::Result {
        let zone = Self::zone_name(self.team_zone(t));
        let team = self.team_name(t);
        writeln!(s, "team \"{zone}\" \"{team}\" {{")?;
        writeln!(
            s,
            "  documentation {{ text = \"Benchmark team {team} of {zone}.\" }}"
        )?;
        for i in self.team_stores(t) {
            writeln!(s)?;
            self.datastore(s, i)?;
        }
        for w in self.team_workspaces(t) {
            writeln!(s)?;
            self.workspace(s, w)?;
        }
        writeln!(s, "}}")
    }

    fn datastore(&self, s: &mut String, i: usize) -> fmt::Result {
        let store = self.store_name(i);
        let kind = Kind::of_store(i);
        writeln!(s, "  datastore \"{store}\" {{")?;
        let mut head = Vec::new();
        if i.is_multiple_of(3) {
            head.push(("production_status", "\"PRODUCTION\"".to_string()));
        }
        if i % 11 == 4 {
            head.push(("deprecated", "false".to_string()));
        }
        attributes(s, "    ", &head)?;
        writeln!(
            s,
            "    documentation {{ text = \"Benchmark store {i}, captured by {}.\" }}",
            kind.label()
        )?;
        writeln!(s, "    capture \"{}\" {{", kind.label())?;
        let consistency = if i % 4 == 1 {
            "SINGLE_DATASET"
        } else {
            "MULTI_DATASET"
        };
        writeln!(s, "      consistency = \"{consistency}\"")?;
        match i % 7 {
            6 => writeln!(s, "      trigger     = {{ cron = \"*/15 * * * *\" }}")?,
            2 => writeln!(s, "      trigger     = {{ interval = \"1m\" }}")?,
            _ => writeln!(s, "      trigger     = {{ interval = \"5m\" }}")?,
        }
        writeln!(s, "      credential  = \"producer_ro\"")?;
        writeln!(s, "      source {{")?;
        writeln!(s, "        postgres {{")?;
        writeln!(s, "          host     = \"127.0.0.1\"")?;
        writeln!(s, "          port     = 5432")?;
        writeln!(s, "          database = \"producers\"")?;
        writeln!(s, "          schema   = \"{store}\"")?;
        writeln!(s, "        }}")?;
        writeln!(s, "      }}")?;
        let mut tail = Vec::new();
        if kind == Kind::Snapshot && i % 4 == 2 {
            let first = self.dataset_name(0);
            tail.push((
                "table_for_dataset",
                format!("{{ {first} = \"t_{first}\" }}"),
            ));
        }
        if kind == Kind::Watermark {
            tail.push(("watermark", "{ column = \"updated_at\" }".to_string()));
        }
        if i.is_multiple_of(5) {
            tail.push(("locations", format!("[\"{LOCATION}\"]")));
        }
        attributes(s, "      ", &tail)?;
        writeln!(s, "    }}")?;
        for d in 0..self.params.datasets_per_store {
            self.dataset(s, i, d)?;
        }
        writeln!(s, "  }}")
    }

    fn dataset(&self, s: &mut String, i: usize, d: usize) -> fmt::Result {
        writeln!(s, "    dataset \"{}\" {{", self.dataset_name(d))?;
        writeln!(s, "      classifications = [\"PUB\"]")?;
        if d.is_multiple_of(5) {
            writeln!(
                s,
                "      documentation {{ text = \"Dataset {d} of store {i}.\" }}"
            )?;
        }
        writeln!(s, "      table {{")?;
        writeln!(s, "        columns = {{")?;
        let columns = self.columns(i, d);
        let pad = columns.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for c in &columns {
            write!(s, "          {:pad$} = {{ type = \"{}\"", c.name, c.ty)?;
            if c.not_null {
                write!(s, ", nullable = false")?;
            }
            if c.primary_key {
                write!(s, ", primary_key = true")?;
            }
            if let Some(doc) = c.doc {
                write!(s, ", doc = \"{doc}\"")?;
            }
            writeln!(s, " }}")?;
        }
        writeln!(s, "        }}")?;
        let mut keys = Vec::new();
        if d.is_multiple_of(3) {
            keys.push(("primary_key", "[\"id\"]".to_string()));
        }
        if columns.iter().any(|c| c.name == "region") {
            keys.push(("partition_key", "[\"region\"]".to_string()));
        }
        attributes(s, "        ", &keys)?;
        writeln!(s, "      }}")?;
        writeln!(s, "    }}")
    }

    fn workspace(&self, s: &mut String, w: usize) -> fmt::Result {
        const PRIORITIES: [&str; 4] = ["CRITICAL", "HIGH", "MEDIUM", "LOW"];
        writeln!(s, "  workspace \"{}\" {{", self.workspace_name(w))?;
        let mut head = vec![("priority", format!("\"{}\"", PRIORITIES[w % 4]))];
        if w.is_multiple_of(3) {
            head.push(("production_status", "\"PRODUCTION\"".to_string()));
        }
        attributes(s, "    ", &head)?;
        if w % 4 == 1 {
            writeln!(
                s,
                "    classification_verifier {{ not_allowed = [\"PC3\"] }}"
            )?;
        }
        for group in self.groups(w) {
            writeln!(s, "    dataset_group \"{}\" {{", group.name)?;
            writeln!(
                s,
                "      requirements = {{ milestoning = \"{}\", latency = \"{}\" }}",
                group.milestoning, group.latency
            )?;
            for (k, &(i, d)) in group.sinks.iter().enumerate() {
                let body = if (w + k).is_multiple_of(5) {
                    "{ deprecations_allowed = false }"
                } else {
                    "{}"
                };
                writeln!(
                    s,
                    "      sink \"{}\" \"{}\" {body}",
                    self.store_name(i),
                    self.dataset_name(d)
                )?;
            }
            writeln!(s, "    }}")?;
        }
        writeln!(s, "  }}")
    }
}

/// Writes consecutive attributes, one a line, with their `=` aligned (as `terraform fmt` would).
fn attributes(s: &mut String, indent: &str, attrs: &[(&str, String)]) -> fmt::Result {
    let pad = attrs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (key, value) in attrs {
        writeln!(s, "{indent}{key:pad$} = {value}")?;
    }
    Ok(())
}

/// The comment every generated file starts with.
fn header(what: &str) -> String {
    format!("# Generated by `cargo xtask gen-model` ({what}). Do not edit.\n\n")
}

/// An `owning_repo` object value.
fn repo(name: &str) -> String {
    format!("{{ repo = \"{name}\", branch = \"main\" }}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashSet};

    /// PostgreSQL's reserved key words (SQL key words appendix, "reserved" and "reserved (can be
    /// function or type)").
    const RESERVED: &[&str] = &[
        "all",
        "analyse",
        "analyze",
        "and",
        "any",
        "array",
        "as",
        "asc",
        "asymmetric",
        "authorization",
        "binary",
        "both",
        "case",
        "cast",
        "check",
        "collate",
        "collation",
        "column",
        "concurrently",
        "constraint",
        "create",
        "cross",
        "current_catalog",
        "current_date",
        "current_role",
        "current_schema",
        "current_time",
        "current_timestamp",
        "current_user",
        "default",
        "deferrable",
        "desc",
        "distinct",
        "do",
        "else",
        "end",
        "except",
        "false",
        "fetch",
        "for",
        "foreign",
        "freeze",
        "from",
        "full",
        "grant",
        "group",
        "having",
        "ilike",
        "in",
        "initially",
        "inner",
        "intersect",
        "into",
        "is",
        "isnull",
        "join",
        "lateral",
        "leading",
        "left",
        "like",
        "limit",
        "localtime",
        "localtimestamp",
        "natural",
        "not",
        "notnull",
        "null",
        "offset",
        "on",
        "only",
        "or",
        "order",
        "outer",
        "overlaps",
        "placing",
        "primary",
        "references",
        "returning",
        "right",
        "select",
        "session_user",
        "similar",
        "some",
        "symmetric",
        "system_user",
        "table",
        "tablesample",
        "then",
        "to",
        "trailing",
        "true",
        "union",
        "unique",
        "user",
        "using",
        "variadic",
        "verbose",
        "when",
        "where",
        "window",
        "with",
    ];

    fn params(stores: usize, datasets: usize, workspaces: usize) -> Params {
        Params {
            stores,
            datasets_per_store: datasets,
            workspaces,
            files: None,
        }
    }

    fn assert_identifier(name: &str) {
        let mut chars = name.chars();
        assert!(
            chars.next().is_some_and(|c| c.is_ascii_alphabetic()),
            "{name}"
        );
        assert!(
            chars.all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{name}"
        );
        assert!(name.len() <= 63, "{name}");
        assert!(
            !RESERVED.contains(&name.to_ascii_lowercase().as_str()),
            "{name}"
        );
    }

    #[test]
    fn deterministic() {
        let p = params(120, 4, 30);
        assert_eq!(generate(&p).unwrap(), generate(&p).unwrap());
    }

    #[test]
    fn rejects_empty_models() {
        assert!(generate(&params(0, 1, 1)).is_err());
        assert!(generate(&params(1, 0, 1)).is_err());
        let mut p = params(1, 1, 1);
        p.files = Some(0);
        assert!(generate(&p).is_err());
    }

    /// Checks the layout's invariants that the validation rules depend on, at a few shapes.
    #[test]
    fn layout_invariants() {
        for &(n, m, w) in &[
            (1, 1, 0),
            (1, 1, 5),
            (3, 2, 7),
            (100, 10, 20),
            (1000, 10, 200),
            (60, 3, 1),
        ] {
            let layout = Layout::new(&params(n, m, w)).unwrap();
            // Every team owns at least one store; stores and workspaces are partitioned among teams.
            let mut store_owner = vec![None; n];
            let mut ws_owner = vec![None; w];
            for t in 0..layout.teams {
                assert!(!layout.team_stores(t).is_empty());
                for i in layout.team_stores(t) {
                    assert!(store_owner[i].replace(t).is_none());
                }
                for ws in layout.team_workspaces(t) {
                    assert!(ws_owner[ws].replace(t).is_none());
                }
            }
            assert!(store_owner.iter().all(Option::is_some));
            assert!(ws_owner.iter().all(Option::is_some));
            // Names are identifiers and unique.
            let stores: HashSet<_> = (0..n).map(|i| layout.store_name(i)).collect();
            let workspaces: HashSet<_> = (0..w).map(|x| layout.workspace_name(x)).collect();
            assert_eq!(stores.len(), n);
            assert_eq!(workspaces.len(), w);
            stores
                .iter()
                .chain(&workspaces)
                .for_each(|s| assert_identifier(s));
            (0..m).for_each(|d| assert_identifier(&layout.dataset_name(d)));
            assert_identifier(DP_LIVE);
            assert_identifier(DP_FORENSIC);
            // Groups: 1-2 per workspace, unique names, non-empty, unique existing sinks.
            let mut consumed = HashSet::new();
            for x in 0..w {
                let groups = layout.groups(x);
                assert!((1..=2).contains(&groups.len()));
                let names: HashSet<_> = groups.iter().map(|g| g.name).collect();
                assert_eq!(names.len(), groups.len());
                for g in &groups {
                    assert_identifier(g.name);
                    assert!(!g.sinks.is_empty());
                    let unique: HashSet<_> = g.sinks.iter().collect();
                    assert_eq!(unique.len(), g.sinks.len());
                    for &(i, d) in &g.sinks {
                        assert!(i < n && d < m);
                        consumed.insert(i);
                    }
                }
            }
            if w >= 1 && w <= n {
                assert_eq!(consumed.len(), n, "every store is consumed");
            }
            // Schemas: identifiers, unique columns, a not-null primary key, watermark and partition
            // columns present and usable.
            for i in 0..n {
                for d in 0..m {
                    let cols = layout.columns(i, d);
                    let by_name: BTreeMap<_, _> = cols.iter().map(|c| (c.name, c)).collect();
                    assert_eq!(by_name.len(), cols.len());
                    cols.iter().for_each(|c| assert_identifier(c.name));
                    assert!(cols.iter().any(|c| c.primary_key));
                    assert!(cols.iter().filter(|c| c.primary_key).all(|c| c.not_null));
                    assert!(by_name["updated_at"].ty == "timestamp");
                    if Kind::of_store(i) == Kind::Watermark {
                        assert!(by_name["updated_at"].not_null);
                    }
                    if let Some(region) = by_name.get("region") {
                        assert!(region.not_null);
                    }
                }
            }
        }
    }

    #[test]
    fn files_option_groups_teams() {
        let mut p = params(1000, 2, 10);
        let per_team = generate(&p).unwrap();
        // ecosystem + 4 zones + 40 teams
        assert_eq!(per_team.len(), 45);
        p.files = Some(7);
        let grouped = generate(&p).unwrap();
        assert_eq!(grouped.len(), 12);
        let count = |files: &[GeneratedFile]| {
            files
                .iter()
                .map(|f| {
                    f.contents.matches("\nteam \"").count()
                        + usize::from(f.contents.starts_with("team \""))
                })
                .sum::<usize>()
        };
        assert_eq!(count(&per_team), 40);
        assert_eq!(count(&grouped), 40);
        p.files = Some(1000);
        assert_eq!(generate(&p).unwrap().len(), 45);
    }

    #[test]
    fn writes_and_replaces() {
        let dir = std::env::temp_dir().join(format!("xtask-gen-model-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("stale.ds.hcl"), "junk").unwrap();
        fs::write(dir.join("keep.txt"), "keep").unwrap();
        let summary = generate_into(&dir, &params(30, 2, 3)).unwrap();
        assert!(!dir.join("stale.ds.hcl").exists());
        assert!(dir.join("keep.txt").exists());
        assert!(dir.join("ecosystem.ds.hcl").exists());
        assert_eq!(summary.datasets, 60);
        let on_disk: u64 = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".ds.hcl"))
            .map(|e| e.metadata().unwrap().len())
            .sum();
        assert_eq!(on_disk, summary.bytes);
        fs::remove_dir_all(&dir).unwrap();
    }
}
