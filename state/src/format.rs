//! The state document: its types, reading (with upgrades from older versions) and the on-disk layout.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::StateError;

/// The state format version this ds writes, and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;

/// The oldest version [`UPGRADES`] starts from: the first format ever written.
const FIRST_VERSION: u32 = 1;

/// One upgrade step: a document of version `n` in, the same document as version `n + 1` out (the caller
/// sets `version`). An `Err` says why the document cannot be upgraded.
type Upgrade = fn(Value) -> Result<Value, String>;

/// `UPGRADES[i]` upgrades version `FIRST_VERSION + i` to the next. Adding format version 2 means: raise
/// [`FORMAT_VERSION`], append `v1_to_v2` here, and describe the change in `docs/state-format.md`.
const UPGRADES: &[Upgrade] = &[];

const _: () = assert!(FIRST_VERSION as usize + UPGRADES.len() == FORMAT_VERSION as usize);

/// The versions a reader understands and how to get from each to the newest.
struct Chain<'a> {
    first: u32,
    steps: &'a [Upgrade],
}

impl Chain<'_> {
    fn current(&self) -> u32 {
        self.first + self.steps.len() as u32
    }

    /// Applies every step from `version` to [`Chain::current`]. The error names the version that failed.
    fn upgrade(&self, mut version: u32, mut doc: Value) -> Result<Value, (u32, String)> {
        while let Some(step) = version
            .checked_sub(self.first)
            .and_then(|i| self.steps.get(i as usize))
        {
            doc = step(doc).map_err(|message| (version, message))?;
            version += 1;
            if let Value::Object(fields) = &mut doc {
                fields.insert("version".to_owned(), version.into());
            }
        }
        Ok(doc)
    }
}

const CHAIN: Chain<'static> = Chain {
    first: FIRST_VERSION,
    steps: UPGRADES,
};

/// The persisted record of what `ds` manages.
///
/// Invariants (kept by [`State::upsert`], restored by every read and write): `resources` is sorted by
/// address and addresses are unique; each resource's `dependencies` are sorted and unique.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// The format version; always [`FORMAT_VERSION`] once read (older documents are upgraded) or written.
    pub version: u32,
    /// Incremented by every write that changes the content.
    pub serial: u64,
    /// A UUID (v4) fixed when the state is created; tells two unrelated states apart.
    pub lineage: String,
    /// The model the last apply used.
    #[serde(default)]
    pub model: ModelInfo,
    /// Every resource `ds` manages, sorted by address.
    pub resources: Vec<ResourceState>,
}

/// Which model the state was last applied from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The model's content hash.
    #[serde(default)]
    pub hash: Option<String>,
    /// The version-control commit of the model, when known.
    #[serde(default)]
    pub commit: Option<String>,
}

fn first_schema_version() -> u32 {
    1
}

fn is_first_schema_version(version: &u32) -> bool {
    *version == 1
}

/// One managed resource as last applied or refreshed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceState {
    /// `type.name`, e.g. `postgres_table.zero_live.crm_db__customers__merge`.
    pub address: String,
    /// The resource type, e.g. `postgres_table`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The provider that manages it, e.g. `postgres`.
    pub provider: String,
    /// The version of the provider's attribute schema that `attributes` follow. Omitted from the file when
    /// it is 1 (the first version of every schema), which a large state would otherwise repeat for every
    /// resource.
    #[serde(
        default = "first_schema_version",
        skip_serializing_if = "is_first_schema_version"
    )]
    pub schema_version: u32,
    /// The provider's attributes; opaque to this crate. Never a secret.
    pub attributes: Value,
    /// The addresses this resource directly depends on, sorted. Omitted from the file when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<String>,
    /// Attribute name → fingerprint (a keyed hash) of a secret input, to notice rotation. Never the secret.
    /// Omitted from the file when empty.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secret_fingerprints: BTreeMap<String, String>,
}

impl State {
    /// An empty state with a fresh lineage and serial 0.
    pub fn new() -> State {
        State {
            version: FORMAT_VERSION,
            serial: 0,
            lineage: uuid::Uuid::new_v4().to_string(),
            model: ModelInfo::default(),
            resources: Vec::new(),
        }
    }

    /// The resource at `address`.
    pub fn resource(&self, address: &str) -> Option<&ResourceState> {
        let index = self.position(address).ok()?;
        Some(&self.resources[index])
    }

    /// Inserts `resource`, or replaces the one with its address (returning it), keeping the order.
    pub fn upsert(&mut self, resource: ResourceState) -> Option<ResourceState> {
        match self.position(&resource.address) {
            Ok(index) => Some(std::mem::replace(&mut self.resources[index], resource)),
            Err(index) => {
                self.resources.insert(index, resource);
                None
            }
        }
    }

    /// Removes and returns the resource at `address`.
    pub fn remove(&mut self, address: &str) -> Option<ResourceState> {
        let index = self.position(address).ok()?;
        Some(self.resources.remove(index))
    }

    fn position(&self, address: &str) -> Result<usize, usize> {
        self.resources
            .binary_search_by(|r| r.address.as_str().cmp(address))
    }

    /// Restores the invariants after direct edits of `resources`: sorts resources and dependencies. The
    /// error is an address that occurs twice.
    pub(crate) fn normalize(&mut self) -> Result<(), String> {
        if !self.resources.is_sorted_by(|a, b| a.address <= b.address) {
            self.resources.sort_by(|a, b| a.address.cmp(&b.address));
        }
        if let Some(pair) = self
            .resources
            .windows(2)
            .find(|pair| pair[0].address == pair[1].address)
        {
            return Err(pair[0].address.clone());
        }
        for resource in &mut self.resources {
            let deps = &mut resource.dependencies;
            if !deps.is_sorted_by(|a, b| a < b) {
                deps.sort();
                deps.dedup();
            }
        }
        Ok(())
    }
}

impl Default for State {
    fn default() -> State {
        State::new()
    }
}

/// Reads a state document. Older format versions are upgraded in memory; a newer one, a missing or unknown
/// `version`, malformed JSON, a missing field and a duplicate address are errors naming `path`. Unknown
/// fields are ignored.
pub fn parse(text: &[u8], path: &Path) -> Result<State, StateError> {
    parse_with(text, path, &CHAIN).map(|(state, _)| state)
}

/// Like [`parse`], and also the version the document was stored in (before upgrading).
pub(crate) fn parse_stored(text: &[u8], path: &Path) -> Result<(State, u32), StateError> {
    parse_with(text, path, &CHAIN)
}

fn parse_with(text: &[u8], path: &Path, chain: &Chain<'_>) -> Result<(State, u32), StateError> {
    // The common case in one pass: a document of the current version. Anything else (another version, an
    // error) is looked at again below, version first, so that the error is about the right thing.
    let is_object = text.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let direct = if is_object {
        Some(serde_json::from_slice::<State>(text))
    } else {
        None
    };
    let direct = match direct {
        Some(Ok(state)) if state.version == chain.current() => return finish(state, path, chain),
        Some(Err(error)) => Some(error),
        _ => None,
    };

    let Peek(found) = serde_json::from_slice(text).map_err(|e| StateError::json(path, &e))?;
    let found = found.ok_or_else(|| StateError::MissingVersion {
        path: path.to_owned(),
    })?;
    let unknown = || StateError::UnknownVersion {
        path: path.to_owned(),
        found: found.to_string(),
        first: chain.first,
    };
    let version = found.as_u64().ok_or_else(unknown)?;
    if version > u64::from(chain.current()) {
        return Err(StateError::NewerVersion {
            path: path.to_owned(),
            version,
            supported: chain.current(),
        });
    }
    if version < u64::from(chain.first) {
        return Err(unknown());
    }
    let version = version as u32;

    let state: State = if version == chain.current() {
        // Read straight from the bytes, so that the error carries line and column.
        match direct {
            Some(error) => return Err(StateError::json(path, &error)),
            None => serde_json::from_slice(text).map_err(|e| StateError::json(path, &e))?,
        }
    } else {
        let doc: Value = serde_json::from_slice(text).map_err(|e| StateError::json(path, &e))?;
        let doc = chain
            .upgrade(version, doc)
            .map_err(|(from, message)| StateError::Upgrade {
                path: path.to_owned(),
                from,
                message,
            })?;
        serde_json::from_value(doc).map_err(|e| StateError::json(path, &e))?
    };
    finish(state, path, chain).map(|(state, _)| (state, version))
}

fn finish(mut state: State, path: &Path, chain: &Chain<'_>) -> Result<(State, u32), StateError> {
    state.version = chain.current();
    state
        .normalize()
        .map_err(|address| StateError::DuplicateAddress {
            path: path.to_owned(),
            address,
        })?;
    Ok((state, chain.current()))
}

/// The `version` of a document (`None`: absent), read first so that a document of another version is never
/// judged by this version's shape. Only a JSON object is a document (derived structs would accept arrays).
struct Peek(Option<Value>);

impl<'de> Deserialize<'de> for Peek {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Peek, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = Peek;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a state document (a JSON object)")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Peek, A::Error> {
                let mut version = None;
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    if key == "version" {
                        version = Some(map.next_value::<Value>()?);
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                Ok(Peek(version))
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

/// The document as stored: the top-level object pretty-printed (two-space indent), the `resources` array
/// with one compact resource per line (four-space indent), and a final newline. One changed resource is one
/// changed line in a diff, and the layout adds under 100 bytes a resource. `version` is always written as
/// [`FORMAT_VERSION`]. Expects the invariants of [`State`] to hold (the backends restore them first).
pub fn to_bytes(state: &State) -> Vec<u8> {
    let encoded = Encoded::new(state);
    let mut out = encoded.header(state.serial);
    out.extend_from_slice(&encoded.body);
    out
}

/// A state's document split around its serial, so that a writer can compare it with the stored bytes and
/// write it with the next serial without serialising twice: `header(serial) + body` is [`to_bytes`].
pub(crate) struct Encoded {
    body: Vec<u8>,
}

impl Encoded {
    pub(crate) fn new(state: &State) -> Encoded {
        // A compact resource is ~100 bytes plus its attributes.
        let mut out = Vec::with_capacity(256 + state.resources.len() * 256);
        out.extend_from_slice(b"  \"lineage\": ");
        json(&mut out, &state.lineage);
        out.extend_from_slice(b",\n  \"model\": {\n    \"hash\": ");
        json(&mut out, &state.model.hash);
        out.extend_from_slice(b",\n    \"commit\": ");
        json(&mut out, &state.model.commit);
        out.extend_from_slice(b"\n  },\n  \"resources\": [");
        for (index, resource) in state.resources.iter().enumerate() {
            out.extend_from_slice(if index == 0 { b"\n    " } else { b",\n    " });
            json(&mut out, resource);
        }
        if !state.resources.is_empty() {
            out.extend_from_slice(b"\n  ");
        }
        out.extend_from_slice(b"]\n}\n");
        Encoded { body: out }
    }

    pub(crate) fn header(&self, serial: u64) -> Vec<u8> {
        format!("{{\n  \"version\": {FORMAT_VERSION},\n  \"serial\": {serial},\n").into_bytes()
    }

    pub(crate) fn body(&self) -> &[u8] {
        &self.body
    }

    /// Whether `bytes` is exactly this document with `serial`.
    pub(crate) fn matches(&self, bytes: &[u8], serial: u64) -> bool {
        let header = self.header(serial);
        bytes.len() == header.len() + self.body.len()
            && bytes.starts_with(&header)
            && bytes[header.len()..] == self.body[..]
    }
}

fn json<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    // Strings, options, JSON values and string maps always serialise, and writing to memory cannot fail.
    serde_json::to_writer(out, value).expect("serialising state values into memory cannot fail");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resource(address: &str, deps: &[&str]) -> ResourceState {
        let kind = address.split('.').next().unwrap().to_owned();
        ResourceState {
            address: address.to_owned(),
            provider: kind.split('_').next().unwrap().to_owned(),
            kind,
            schema_version: 1,
            attributes: json!({ "name": address, "columns": [["id", "bigint"]] }),
            dependencies: deps.iter().map(|d| (*d).to_owned()).collect(),
            secret_fingerprints: BTreeMap::new(),
        }
    }

    fn sample() -> State {
        let mut state = State::new();
        state.serial = 7;
        state.model = ModelInfo {
            hash: Some("sha256:ab".into()),
            commit: None,
        };
        state.upsert(resource(
            "postgres_table.zero_live.b",
            &["postgres_schema.zero_live"],
        ));
        state.upsert(resource("postgres_schema.zero_live", &[]));
        let mut view = resource("postgres_view.zero_live.v", &["postgres_table.zero_live.b"]);
        view.secret_fingerprints
            .insert("password".into(), "hmac-sha256:0f".into());
        state.upsert(view);
        state
    }

    fn path() -> &'static Path {
        Path::new(".ds/state.json")
    }

    #[test]
    fn layout_is_pretty_outside_and_one_line_per_resource() {
        let text = String::from_utf8(to_bytes(&sample())).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "{");
        assert_eq!(lines[1], "  \"version\": 1,");
        assert_eq!(lines[2], "  \"serial\": 7,");
        assert!(lines[3].starts_with("  \"lineage\": \""));
        assert_eq!(
            &lines[4..8],
            [
                "  \"model\": {",
                "    \"hash\": \"sha256:ab\",",
                "    \"commit\": null",
                "  },"
            ]
        );
        assert_eq!(lines[8], "  \"resources\": [");
        assert_eq!(
            lines[9],
            "    {\"address\":\"postgres_schema.zero_live\",\"type\":\"postgres_schema\",\"provider\":\"postgres\",\
             \"attributes\":{\"columns\":[[\"id\",\"bigint\"]],\"name\":\"postgres_schema.zero_live\"}},"
        );
        assert!(lines[10].ends_with("\"dependencies\":[\"postgres_schema.zero_live\"]},"));
        assert!(lines[11].ends_with("\"secret_fingerprints\":{\"password\":\"hmac-sha256:0f\"}}"));
        assert_eq!(&lines[12..], ["  ]", "}"]);
        assert!(text.ends_with("}\n"));
    }

    #[test]
    fn empty_state_layout() {
        let mut state = State::new();
        state.lineage = "l".into();
        let text = String::from_utf8(to_bytes(&state)).unwrap();
        assert_eq!(
            text,
            "{\n  \"version\": 1,\n  \"serial\": 0,\n  \"lineage\": \"l\",\n  \"model\": {\n    \"hash\": null,\n    \
             \"commit\": null\n  },\n  \"resources\": []\n}\n"
        );
    }

    #[test]
    fn round_trip() {
        let state = sample();
        assert_eq!(parse(&to_bytes(&state), path()).unwrap(), state);
        let empty = State::new();
        assert_eq!(parse(&to_bytes(&empty), path()).unwrap(), empty);
    }

    #[test]
    fn the_layout_is_ordinary_json() {
        let state = sample();
        let reparsed: State = serde_json::from_slice(&to_bytes(&state)).unwrap();
        assert_eq!(reparsed, state);
    }

    #[test]
    fn upsert_keeps_order_and_replaces() {
        let mut state = sample();
        let addresses: Vec<_> = state.resources.iter().map(|r| r.address.as_str()).collect();
        assert_eq!(
            addresses,
            [
                "postgres_schema.zero_live",
                "postgres_table.zero_live.b",
                "postgres_view.zero_live.v"
            ]
        );
        let mut changed = resource("postgres_table.zero_live.b", &[]);
        changed.schema_version = 2;
        let old = state.upsert(changed).unwrap();
        assert_eq!(old.schema_version, 1);
        assert_eq!(
            state
                .resource("postgres_table.zero_live.b")
                .unwrap()
                .schema_version,
            2
        );
        assert_eq!(state.resources.len(), 3);
        assert!(state.resource("postgres_table.zero_live.a").is_none());
        assert_eq!(
            state.remove("postgres_schema.zero_live").unwrap().kind,
            "postgres_schema"
        );
        assert!(state.remove("postgres_schema.zero_live").is_none());
        assert_eq!(state.resources.len(), 2);
    }

    #[test]
    fn fresh_states_have_distinct_lineages() {
        let (a, b) = (State::new(), State::new());
        assert_ne!(a.lineage, b.lineage);
        assert_eq!(a.lineage.len(), 36);
        assert_eq!((a.serial, a.version), (0, FORMAT_VERSION));
    }

    #[test]
    fn reading_sorts_and_tolerates_unknown_fields() {
        let text = br#"{"version": 1, "serial": 2, "lineage": "l", "future": true,
            "resources": [
              {"address": "b.x", "type": "b", "provider": "p", "schema_version": 0, "attributes": {}, "new": 1,
               "dependencies": ["z.z", "a.a", "z.z"]},
              {"address": "a.x", "type": "a", "provider": "p", "schema_version": 0, "attributes": null}
            ]}"#;
        let state = parse(text, path()).unwrap();
        assert_eq!(state.model, ModelInfo::default());
        assert_eq!(state.resources[0].address, "a.x");
        assert_eq!(state.resources[1].dependencies, ["a.a", "z.z"]);
    }

    fn message(text: &[u8]) -> String {
        parse(text, path()).unwrap_err().to_string()
    }

    #[test]
    fn corrupt_json_names_path_and_position() {
        let text = b"{\n  \"version\": 1,\n  \"serial\": x\n}";
        let error = parse(text, path()).unwrap_err();
        assert!(
            matches!(
                error,
                StateError::Syntax {
                    line: 3,
                    column: 13,
                    ..
                }
            ),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "`.ds/state.json` is not valid JSON (expected value at line 3, column 13): repair it, or restore \
             the previous state from its backup"
        );
    }

    #[test]
    fn truncated_file() {
        let full = to_bytes(&sample());
        let error = parse(&full[..full.len() / 2], path()).unwrap_err();
        assert!(matches!(error, StateError::Truncated { .. }), "{error:?}");
        assert!(
            error
                .to_string()
                .starts_with("`.ds/state.json` ends early, at line 11, column"),
            "{error}"
        );
        assert!(matches!(
            parse(b"", path()).unwrap_err(),
            StateError::Truncated {
                line: 1,
                column: 0,
                ..
            }
        ));
    }

    #[test]
    fn not_an_object() {
        assert_eq!(
            message(b"[1]"),
            "`.ds/state.json` is not a valid state file (invalid type: sequence, expected a state document (a \
             JSON object) at line 1, column 0): repair it, or restore the previous state from its backup"
        );
    }

    #[test]
    fn missing_field() {
        assert_eq!(
            message(br#"{"version": 1, "serial": 1, "resources": []}"#),
            "`.ds/state.json` is not a valid state file (missing field `lineage` at line 1, column 44): repair \
             it, or restore the previous state from its backup"
        );
        let error = message(
            br#"{"version": 1, "serial": 1, "lineage": "l", "resources": [{"address": "a.b"}]}"#,
        );
        assert!(error.contains("missing field `type`"), "{error}");
    }

    #[test]
    fn newer_version_refused() {
        assert_eq!(
            message(br#"{"version": 2, "serial": 1, "lineage": "l", "resources": "a new shape"}"#),
            "`.ds/state.json` was written by a newer ds (state format version 2; this ds reads versions up to \
             1): upgrade ds"
        );
    }

    #[test]
    fn missing_or_unknown_version_refused() {
        assert_eq!(
            message(br#"{"serial": 1, "lineage": "l", "resources": []}"#),
            "`.ds/state.json` has no `version` field, so it is not a ds state file: check the path"
        );
        assert_eq!(
            message(br#"{"version": 0, "serial": 1, "lineage": "l", "resources": []}"#),
            "`.ds/state.json` has state format version 0, which no ds release writes (the first is 1): check \
             the path, or restore the previous state from its backup"
        );
        assert!(
            message(br#"{"version": "1"}"#).contains("has state format version \"1\", which no ds")
        );
        assert!(
            message(br#"{"version": -1}"#).contains("has state format version -1, which no ds")
        );
        assert!(
            message(br#"{"version": 1.5}"#).contains("has state format version 1.5, which no ds")
        );
    }

    #[test]
    fn duplicate_addresses_refused() {
        let text = br#"{"version": 1, "serial": 1, "lineage": "l", "resources": [
            {"address": "a.x", "type": "a", "provider": "p", "schema_version": 0, "attributes": {}},
            {"address": "a.x", "type": "a", "provider": "p", "schema_version": 0, "attributes": {}}]}"#;
        assert_eq!(
            message(text),
            "the state in `.ds/state.json` records `a.x` twice: keep one of the two entries"
        );
    }

    /// A made-up history: version 1 called `resources` `items`; version 2 is today's shape.
    fn items_to_resources(mut doc: Value) -> Result<Value, String> {
        let fields = doc.as_object_mut().ok_or("not an object")?;
        let items = fields.remove("items").ok_or("no `items`")?;
        fields.insert("resources".into(), items);
        Ok(doc)
    }

    const TEST_CHAIN: Chain<'static> = Chain {
        first: 1,
        steps: &[items_to_resources],
    };

    #[test]
    fn older_versions_are_upgraded_before_reading() {
        let old = br#"{"version": 1, "serial": 3, "lineage": "l", "items": [
            {"address": "a.x", "type": "a", "provider": "p", "schema_version": 0, "attributes": {}}]}"#;
        let (state, stored) = parse_with(old, path(), &TEST_CHAIN).unwrap();
        assert_eq!((stored, state.version, state.serial), (1, 2, 3));
        assert_eq!(state.resources[0].address, "a.x");

        let current = br#"{"version": 2, "serial": 3, "lineage": "l", "resources": []}"#;
        assert_eq!(parse_with(current, path(), &TEST_CHAIN).unwrap().1, 2);

        let broken = br#"{"version": 1, "serial": 3, "lineage": "l"}"#;
        assert_eq!(
            parse_with(broken, path(), &TEST_CHAIN)
                .unwrap_err()
                .to_string(),
            "cannot upgrade `.ds/state.json` from state format version 1: no `items`; the file is unchanged: \
             report this as a ds bug"
        );
        let invalid_after = br#"{"version": 1, "serial": 3, "items": []}"#;
        assert_eq!(
            parse_with(invalid_after, path(), &TEST_CHAIN)
                .unwrap_err()
                .to_string(),
            "`.ds/state.json` is not a valid state file (missing field `lineage`): repair it, or restore the \
             previous state from its backup"
        );
    }

    #[test]
    fn the_chain_reaches_the_current_version() {
        assert_eq!(CHAIN.current(), FORMAT_VERSION);
        assert_eq!(
            CHAIN.upgrade(FORMAT_VERSION, json!({"x": 1})).unwrap(),
            json!({"x": 1})
        );
    }
}
