//! The typed model: what the HCL files say, lowered into plain Rust data with the span of every construct a
//! diagnostic may point at.
//!
//! The model is deliberately tolerant: a value that failed to lower is `None` (its diagnostic is already
//! recorded), so that validation can still check everything else in the same run. It is not a file format:
//! nothing here is serialised.

use crate::diag::Span;
use crate::types::ColumnType;

/// A value with the span it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spanned<T> {
    /// The value.
    pub value: T,
    /// Where it was written.
    pub span: Span,
}

impl<T> Spanned<T> {
    /// Wraps a value.
    pub fn new(value: T, span: Span) -> Spanned<T> {
        Spanned { value, span }
    }
}

/// A name given by a block label or an object key.
pub type Name = Spanned<String>;

impl Name {
    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.value
    }

    /// The form names are compared in: names are case-insensitive.
    pub fn key(&self) -> String {
        self.value.to_ascii_lowercase()
    }
}

/// A whole model: every top-level block of every file, in file order.
#[derive(Debug, Default, Clone)]
pub struct Model {
    /// `ecosystem` blocks (a valid model has exactly one).
    pub ecosystems: Vec<Ecosystem>,
    /// `platform` blocks.
    pub platforms: Vec<Platform>,
    /// `assignment` blocks.
    pub assignments: Vec<Assignment>,
    /// `zone` blocks.
    pub zones: Vec<Zone>,
    /// `team` blocks.
    pub teams: Vec<Team>,
}

impl Model {
    /// The repo that owns zone `zone`: its `zone_declaration`'s, in the (first) ecosystem.
    pub fn zone_owner(&self, zone: &str) -> Option<&Repo> {
        self.ecosystems
            .first()?
            .zone_declarations
            .iter()
            .find(|d| d.name.value.eq_ignore_ascii_case(zone))?
            .owning_repo
            .as_ref()
    }

    /// The repo that owns team `team` of zone `zone`: its `team_declaration`'s in the zone block.
    pub fn team_owner(&self, zone: &str, team: &str) -> Option<&Repo> {
        self.zones
            .iter()
            .find(|z| z.name.value.eq_ignore_ascii_case(zone))?
            .team_declarations
            .iter()
            .find(|d| d.name.value.eq_ignore_ascii_case(team))?
            .owning_repo
            .as_ref()
    }
}

/// A `documentation` block.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Documentation {
    /// Plain text.
    pub text: Option<String>,
    /// Markdown.
    pub markdown: Option<String>,
    /// Free-form tags, in written order.
    pub tags: Vec<(String, String)>,
}

/// A git repository and branch that owns a part of the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repo {
    /// `owner/name`.
    pub repo: Spanned<String>,
    /// The branch.
    pub branch: Spanned<String>,
    /// The whole `owning_repo` value.
    pub span: Span,
}

impl std::fmt::Display for Repo {
    /// `owner/name@branch`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.repo.value, self.branch.value)
    }
}

/// The `ecosystem` block.
#[derive(Debug, Clone)]
pub struct Ecosystem {
    /// Its label.
    pub name: Name,
    /// Who owns the ecosystem, platforms and assignments.
    pub owning_repo: Option<Repo>,
    /// Documentation.
    pub documentation: Option<Documentation>,
    /// Infrastructure vendors.
    pub vendors: Vec<Vendor>,
    /// Declared zones.
    pub zone_declarations: Vec<Declaration>,
    /// The block header.
    pub span: Span,
}

/// Cloud kinds a vendor may be.
pub const CLOUDS: &[&str] = &[
    "PRIVATE",
    "AWS",
    "AZURE",
    "GCP",
    "IBM",
    "ORACLE",
    "ALIBABA",
    "AWS_CHINA",
    "TEN_CENT",
    "HUAWEI",
    "AZURE_CHINA",
];

/// An infrastructure vendor and its location tree.
#[derive(Debug, Clone)]
pub struct Vendor {
    /// Its label.
    pub name: Name,
    /// One of [`CLOUDS`].
    pub cloud: Option<Spanned<String>>,
    /// Documentation.
    pub documentation: Option<Documentation>,
    /// Top-level locations.
    pub locations: Vec<Location>,
}

/// A location in a vendor's tree.
#[derive(Debug, Clone)]
pub struct Location {
    /// Its label.
    pub name: Name,
    /// Nested locations.
    pub locations: Vec<Location>,
}

/// A `zone_declaration` or `team_declaration`: the parent saying that a child exists and who owns it.
#[derive(Debug, Clone)]
pub struct Declaration {
    /// The declared zone or team.
    pub name: Name,
    /// The repo that owns the definition.
    pub owning_repo: Option<Repo>,
    /// The block header.
    pub span: Span,
}

/// A `platform` block.
#[derive(Debug, Clone)]
pub struct Platform {
    /// Its label.
    pub name: Name,
    /// Where it runs (`Vendor:Path/Sub`).
    pub locations: Vec<Spanned<String>>,
    /// The merge database.
    pub merge_db: Option<MergeDb>,
    /// Kafka Connect, when cdc or kafka stores are ingested.
    pub kafka_connect: Option<KafkaConnect>,
    /// The object store.
    pub object_store: Option<ObjectStore>,
    /// Where credentials are resolved from.
    pub credentials: Option<Spanned<CredentialSource>>,
    /// Where state is kept.
    pub state: Option<StateBackend>,
    /// Its data platforms.
    pub data_platforms: Vec<DataPlatform>,
    /// The block header.
    pub span: Span,
}

/// The `merge_db` block.
#[derive(Debug, Clone)]
pub struct MergeDb {
    /// Host name or address.
    pub host: Option<Spanned<String>>,
    /// TCP port.
    pub port: Option<Spanned<u16>>,
    /// Database name.
    pub database: Option<Spanned<String>>,
    /// Credential name.
    pub credential: Option<Spanned<String>>,
    /// The block.
    pub span: Span,
}

/// The `kafka_connect` block.
#[derive(Debug, Clone)]
pub struct KafkaConnect {
    /// Kafka Connect REST URL.
    pub url: Option<Spanned<String>>,
    /// Kafka bootstrap servers.
    pub bootstrap_servers: Option<Spanned<String>>,
    /// Optional basic-auth credential.
    pub credential: Option<Spanned<String>>,
    /// The block.
    pub span: Span,
}

/// The `object_store` block.
#[derive(Debug, Clone)]
pub struct ObjectStore {
    /// S3 endpoint URL.
    pub endpoint: Option<Spanned<String>>,
    /// Region.
    pub region: Option<Spanned<String>>,
    /// Credential name.
    pub credential: Option<Spanned<String>>,
    /// Buckets.
    pub buckets: Vec<Bucket>,
    /// The block.
    pub span: Span,
}

/// A `bucket` of an object store.
#[derive(Debug, Clone)]
pub struct Bucket {
    /// Its label (the bucket name).
    pub name: Name,
    /// Object versioning.
    pub versioning: bool,
    /// Expire objects after this many days.
    pub expire_after_days: Option<u32>,
    /// Tags.
    pub tags: Vec<(String, String)>,
    /// The bucket policy: a JSON document as written (checked to be a JSON object by validation).
    pub policy: Option<Spanned<String>>,
}

/// Where credentials come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// `<NAME>_USER`, `<NAME>_PASSWORD`, `<NAME>_TOKEN` environment variables.
    Env,
    /// Files in a directory.
    Directory(Option<String>),
}

/// The `state` setting.
#[derive(Debug, Clone)]
pub struct StateBackend {
    /// `local`, `postgres` or `s3`.
    pub backend: Option<Spanned<String>>,
    /// Local path.
    pub path: Option<Spanned<String>>,
    /// S3 bucket.
    pub bucket: Option<Spanned<String>>,
    /// S3 key.
    pub key: Option<Spanned<String>>,
    /// The whole value.
    pub span: Span,
}

/// Slowly-changing-dimension kind of a data platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Milestoning {
    /// SCD1: the live rows only.
    LiveOnly,
    /// SCD2: every version.
    Forensic,
}

impl Milestoning {
    /// As written in the model.
    pub fn as_str(self) -> &'static str {
        match self {
            Milestoning::LiveOnly => "LIVE_ONLY",
            Milestoning::Forensic => "FORENSIC",
        }
    }
}

/// A `data_platform` of a platform.
#[derive(Debug, Clone)]
pub struct DataPlatform {
    /// Its label.
    pub name: Name,
    /// Live or forensic.
    pub milestoning: Option<Spanned<Milestoning>>,
    /// Staging batches kept (-1: all).
    pub staging_batches_to_keep: Option<Spanned<i64>>,
    /// Bucket that committed batches are archived to.
    pub archive_bucket: Option<Spanned<String>>,
}

/// An `assignment` block: a dataset group's data platform, chosen explicitly.
#[derive(Debug, Clone)]
pub struct Assignment {
    /// The workspace label.
    pub workspace: Name,
    /// The dataset group label.
    pub group: Name,
    /// The chosen data platform.
    pub data_platform: Option<Spanned<String>>,
    /// The block header.
    pub span: Span,
}

/// An allow/deny list.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Its label (none for a `classification_verifier`).
    pub name: Option<Name>,
    /// Only these are accepted, when set.
    pub allowed: Option<Vec<Spanned<String>>>,
    /// These are refused.
    pub not_allowed: Vec<Spanned<String>>,
    /// The block header.
    pub span: Span,
}

/// A `zone` block.
#[derive(Debug, Clone)]
pub struct Zone {
    /// Its label.
    pub name: Name,
    /// Documentation.
    pub documentation: Option<Documentation>,
    /// Declared teams.
    pub team_declarations: Vec<Declaration>,
    /// Classification policies, checked against what the zone's workspaces consume.
    pub classification_policies: Vec<Policy>,
    /// Location policies, checked against platforms that ingest the zone's stores.
    pub location_policies: Vec<Policy>,
    /// Vendor policies, likewise.
    pub vendor_policies: Vec<Policy>,
    /// Data platforms the zone's workspaces may be served by.
    pub data_platform_policies: Vec<Policy>,
    /// The block header.
    pub span: Span,
}

/// A `team` block.
#[derive(Debug, Clone)]
pub struct Team {
    /// The zone label.
    pub zone: Name,
    /// The team label.
    pub name: Name,
    /// Documentation.
    pub documentation: Option<Documentation>,
    /// Datastores (not counting transformer outputs, which sit in their transformer).
    pub datastores: Vec<Datastore>,
    /// Workspaces.
    pub workspaces: Vec<Workspace>,
    /// The block header.
    pub span: Span,
}

/// `PRODUCTION` or `NOT_PRODUCTION`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProductionStatus {
    /// In production.
    Production,
    /// Not in production (the default).
    #[default]
    NotProduction,
}

/// A `datastore` block, or a transformer's `output` block.
#[derive(Debug, Clone)]
pub struct Datastore {
    /// Its label.
    pub name: Name,
    /// Production or not.
    pub production_status: ProductionStatus,
    /// Deprecated stores may only be consumed with `deprecations_allowed`.
    pub deprecated: bool,
    /// Documentation.
    pub documentation: Option<Documentation>,
    /// `capture` blocks (exactly one for a datastore; none for a transformer output).
    pub captures: Vec<Capture>,
    /// Datasets.
    pub datasets: Vec<Dataset>,
    /// The block header.
    pub span: Span,
}

/// How a store is captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureKind {
    /// Debezium change data capture.
    Cdc,
    /// Full snapshot read by the scheduler.
    SqlSnapshot,
    /// Incremental read above a watermark.
    SqlWatermark,
    /// An existing Kafka topic of JSON records.
    Kafka,
}

impl CaptureKind {
    /// The kinds, as written.
    pub const NAMES: &'static [&'static str] = &["cdc", "sql_snapshot", "sql_watermark", "kafka"];

    /// Parses a kind label.
    pub fn parse(text: &str) -> Option<CaptureKind> {
        match text {
            "cdc" => Some(CaptureKind::Cdc),
            "sql_snapshot" => Some(CaptureKind::SqlSnapshot),
            "sql_watermark" => Some(CaptureKind::SqlWatermark),
            "kafka" => Some(CaptureKind::Kafka),
            _ => None,
        }
    }

    /// As written.
    pub fn as_str(self) -> &'static str {
        match self {
            CaptureKind::Cdc => "cdc",
            CaptureKind::SqlSnapshot => "sql_snapshot",
            CaptureKind::SqlWatermark => "sql_watermark",
            CaptureKind::Kafka => "kafka",
        }
    }
}

/// When a job runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// Every so many seconds.
    Interval(u64),
    /// A 5-field cron expression.
    Cron(String),
    /// Only when started from outside.
    External,
}

/// The database engine of a capture's source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceEngine {
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    Mysql,
}

/// A producer's database.
#[derive(Debug, Clone)]
pub struct SourceDb {
    /// Engine.
    pub engine: SourceEngine,
    /// Host.
    pub host: Option<Spanned<String>>,
    /// Port.
    pub port: Option<Spanned<u16>>,
    /// Database.
    pub database: Option<Spanned<String>>,
    /// Schema (default `public`).
    pub schema: Option<Spanned<String>>,
    /// The engine block (`postgres` or `mysql`).
    pub span: Span,
    /// The enclosing `source` block.
    pub source_span: Span,
}

/// A `capture` block.
#[derive(Debug, Clone)]
pub struct Capture {
    /// The kind label; `None` when the label is unknown.
    pub kind: Option<CaptureKind>,
    /// `MULTI_DATASET` (default) or `SINGLE_DATASET`.
    pub single_dataset: bool,
    /// When ingestion runs.
    pub trigger: Option<Spanned<Trigger>>,
    /// Credential name for the source.
    pub credential: Option<Spanned<String>>,
    /// The source database.
    pub source: Option<SourceDb>,
    /// Dataset → source table.
    pub table_for_dataset: Vec<(Name, Spanned<String>)>,
    /// Watermark column (sql_watermark).
    pub watermark: Option<Spanned<String>>,
    /// Dataset → topic (kafka).
    pub topic_for_dataset: Vec<(Name, Spanned<String>)>,
    /// Where the source runs.
    pub locations: Vec<Spanned<String>>,
    /// The block header.
    pub span: Span,
}

/// A classification: `TYPE` or `TYPE:name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    /// The type (`PC3`).
    pub kind: String,
    /// The optional name (`email`).
    pub name: Option<String>,
}

impl Classification {
    /// Parses `TYPE` or `TYPE:name`; `None` when malformed.
    pub fn parse(text: &str) -> Option<Classification> {
        let (kind, name) = match text.split_once(':') {
            Some((kind, name)) => (kind, Some(name)),
            None => (text, None),
        };
        let word = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        if !word(kind) || !name.is_none_or(word) {
            return None;
        }
        Some(Classification {
            kind: kind.to_string(),
            name: name.map(str::to_string),
        })
    }

    /// Whether a policy entry (`TYPE` or `TYPE:name`) covers this classification: `PC3` covers `PC3:email`.
    pub fn matches(&self, entry: &Classification) -> bool {
        self.kind.eq_ignore_ascii_case(&entry.kind)
            && match &entry.name {
                None => true,
                Some(name) => self
                    .name
                    .as_deref()
                    .is_some_and(|own| own.eq_ignore_ascii_case(name)),
            }
    }
}

impl std::fmt::Display for Classification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{}:{}", self.kind, name),
            None => f.write_str(&self.kind),
        }
    }
}

/// A `dataset` block.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Its label.
    pub name: Name,
    /// Dataset-level classifications.
    pub classifications: Vec<Spanned<Classification>>,
    /// The `classifications` attribute, when written.
    pub classifications_span: Option<Span>,
    /// Deprecated datasets may only be consumed with `deprecations_allowed`.
    pub deprecated: bool,
    /// Documentation.
    pub documentation: Option<Documentation>,
    /// The schema.
    pub table: Option<Table>,
    /// The block header.
    pub span: Span,
}

impl Dataset {
    /// Every classification of the dataset, dataset-level or column-level.
    pub fn all_classifications(&self) -> impl Iterator<Item = &Spanned<Classification>> {
        self.classifications.iter().chain(
            self.table
                .iter()
                .flat_map(|t| t.columns.iter().flat_map(|c| c.classifications.iter())),
        )
    }

    /// The primary key columns: the explicit list, else the flagged columns in declaration order.
    pub fn primary_key(&self) -> Vec<&str> {
        let Some(table) = &self.table else {
            return Vec::new();
        };
        match &table.primary_key {
            Some(list) => list.iter().map(|n| n.value.as_str()).collect(),
            None => table
                .columns
                .iter()
                .filter(|c| c.primary_key)
                .map(|c| c.name.as_str())
                .collect(),
        }
    }
}

/// A `table` block: the dataset's schema.
#[derive(Debug, Clone)]
pub struct Table {
    /// Columns in declaration order.
    pub columns: Vec<Column>,
    /// Explicit primary key order.
    pub primary_key: Option<Vec<Spanned<String>>>,
    /// The `primary_key` attribute.
    pub primary_key_span: Option<Span>,
    /// Partition columns.
    pub partition_key: Option<Vec<Spanned<String>>>,
    /// The block header.
    pub span: Span,
}

impl Table {
    /// A column by (case-insensitive) name.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns
            .iter()
            .find(|c| c.name.value.eq_ignore_ascii_case(name))
    }
}

/// A column of a table.
#[derive(Debug, Clone)]
pub struct Column {
    /// Its key.
    pub name: Name,
    /// Its type, when it parsed.
    pub ty: Option<Spanned<ColumnType>>,
    /// Whether NULL is allowed (default true).
    pub nullable: bool,
    /// The `nullable` entry, when written.
    pub nullable_span: Option<Span>,
    /// Whether it is part of the primary key.
    pub primary_key: bool,
    /// Column-level classifications.
    pub classifications: Vec<Spanned<Classification>>,
    /// Documentation.
    pub doc: Option<String>,
    /// The whole `name = { ... }` entry.
    pub span: Span,
}

/// Workspace priority.
pub const PRIORITIES: &[&str] = &["CRITICAL", "HIGH", "MEDIUM", "LOW"];
/// Latency requirements.
pub const LATENCIES: &[&str] = &["SECONDS", "MINUTES", "HOURS", "DAYS"];

/// A `workspace` block.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// Its label.
    pub name: Name,
    /// One of [`PRIORITIES`].
    pub priority: Option<Spanned<String>>,
    /// Production or not.
    pub production_status: ProductionStatus,
    /// The workspace's own classification check.
    pub classification_verifier: Option<Policy>,
    /// Dataset groups.
    pub groups: Vec<DatasetGroup>,
    /// Transformers (a valid workspace has at most one).
    pub transformers: Vec<Transformer>,
    /// The block header.
    pub span: Span,
}

/// A `dataset_group` block.
#[derive(Debug, Clone)]
pub struct DatasetGroup {
    /// Its label.
    pub name: Name,
    /// The `requirements` value, when written.
    pub requirements: Option<Requirements>,
    /// Sinks.
    pub sinks: Vec<Sink>,
    /// The block header.
    pub span: Span,
}

/// What a group requires of its data platform.
#[derive(Debug, Clone)]
pub struct Requirements {
    /// Live or forensic.
    pub milestoning: Option<Spanned<Milestoning>>,
    /// One of [`LATENCIES`].
    pub latency: Option<Spanned<String>>,
    /// The whole value.
    pub span: Span,
}

/// A `sink` block: one consumed dataset.
#[derive(Debug, Clone)]
pub struct Sink {
    /// The store label.
    pub store: Name,
    /// The dataset label.
    pub dataset: Name,
    /// Whether consuming a deprecated dataset is accepted (with a warning).
    pub deprecations_allowed: bool,
    /// The block header.
    pub span: Span,
}

/// A `transformer` block.
#[derive(Debug, Clone)]
pub struct Transformer {
    /// Its label.
    pub name: Name,
    /// When it runs; `None`: after each commit of an input.
    pub trigger: Option<Spanned<Trigger>>,
    /// The SQL, with `{{ input ... }}` placeholders.
    pub sql: Option<Spanned<String>>,
    /// Every `{{ ... }}` placeholder of the SQL, parsed, with its place in the file.
    pub inputs: Vec<Spanned<Result<crate::template::Input, String>>>,
    /// The output stores (a valid transformer has exactly one).
    pub outputs: Vec<Datastore>,
    /// The block header.
    pub span: Span,
}
