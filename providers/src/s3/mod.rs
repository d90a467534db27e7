//! S3: buckets of a platform's object store (archives, state), through the AWS SDK with path-style
//! addressing and the endpoint the model names (MinIO, or any S3-compatible server).
//!
//! `s3_bucket` attributes: `endpoint`, `region`, `credential` (its `<NAME>_USER` is the access key, its
//! `<NAME>_PASSWORD` the secret key), `name`, `versioning`, `expire_after_days` (one lifecycle rule, id
//! [`live::LIFECYCLE_RULE`], expiring current objects), `tags` (a map) and, optionally, `policy` (the bucket
//! policy as a JSON object). A policy is compared in the normal form of [`normalise_policy`], never as text.

pub mod live;

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::kind::{Planned, ResourceKind, diff_attributes};

/// The AWS SDK this provider uses, for callers that talk to the same buckets (tests).
pub use aws_sdk_s3 as sdk;

/// `s3_bucket`: a bucket with versioning, lifecycle, policy and tags. Buckets hold objects: protected (a
/// delete or replace is planned only with `--allow-destroy`, and then takes the objects with the bucket).
pub struct Bucket;

/// The typed attributes of an `s3_bucket`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketConfig {
    /// `http://127.0.0.1:9000`.
    pub endpoint: String,
    /// The region requests are signed for (`us-east-1`).
    pub region: String,
    /// The credential name: user = access key, password = secret key.
    #[serde(default)]
    pub credential: Option<String>,
    /// The bucket name.
    pub name: String,
    /// Object versioning (`false` on a bucket that had it: suspended).
    #[serde(default)]
    pub versioning: bool,
    /// Current objects expire after this many days.
    #[serde(default)]
    pub expire_after_days: Option<u32>,
    /// Bucket tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// The bucket policy, a JSON object.
    #[serde(default)]
    pub policy: Option<Value>,
}

/// The IO of `s3_bucket`.
pub static LIVE: live::BucketLive = live::BucketLive;

/// A bucket moves (a new one is made, the old one deleted) when its server or name changes.
pub const REPLACE_ON: &[&str] = &["endpoint", "name"];

impl ResourceKind for Bucket {
    fn name(&self) -> &'static str {
        "s3_bucket"
    }
    fn provider(&self) -> &'static str {
        "s3"
    }
    fn protected(&self) -> bool {
        true
    }
    fn replace_on(&self) -> &'static [&'static str] {
        REPLACE_ON
    }
    fn plan(&self, desired: &Value, prior: &Value) -> Planned {
        diff_attributes(
            &with_normal_policy(desired),
            &with_normal_policy(prior),
            REPLACE_ON,
            &[],
        )
    }
    fn validate(&self, attributes: &Value) -> Result<(), String> {
        validate(attributes)
    }
    fn live(&self) -> Option<&dyn crate::live::Live> {
        Some(&LIVE)
    }
}

/// A bucket's attributes: their typed shape, a valid bucket name, a policy that is a JSON object.
pub fn validate(attributes: &Value) -> Result<(), String> {
    let config = BucketConfig::deserialize(attributes).map_err(|e| e.to_string())?;
    check_name(&config.name)?;
    if config.policy.as_ref().is_some_and(|p| !p.is_object()) {
        return Err("`policy` must be a JSON object".into());
    }
    if config.expire_after_days == Some(0) {
        return Err("`expire_after_days` must be at least 1".into());
    }
    Ok(())
}

/// S3's bucket naming rules: 3 to 63 characters, lowercase letters, digits, `.` and `-`, starting and
/// ending with a letter or digit.
pub fn check_name(name: &str) -> Result<(), String> {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let ok = (3..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && edge(name.chars().next())
        && edge(name.chars().last());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid bucket name: 3 to 63 lowercase letters, digits, `.` or `-`, \
             starting and ending with a letter or digit"
        ))
    }
}

fn with_normal_policy(attributes: &Value) -> Value {
    let mut attributes = attributes.clone();
    if let Some(policy) = attributes.get_mut("policy") {
        *policy = normalise_policy(policy);
    }
    attributes
}

/// The normal form in which policies are compared, so that a server's rewriting of the document that
/// does not change its meaning is not drift. MinIO, for one, adds `Version`, turns a `"*"` principal into
/// `{"AWS": ["*"]}` and single strings into lists, and may reorder statements and their lists:
/// - `Version` absent → `"2012-10-17"`; `Statement` a single object → a list of one;
/// - `Action`, `NotAction`, `Resource`, `NotResource`, each principal's and each condition's values: a
///   single string → a list; lists sorted, duplicates removed;
/// - `Principal`/`NotPrincipal` `"*"` → `{"AWS": ["*"]}`; an empty `Sid` is dropped;
/// - statements sorted (by their normal JSON text), duplicates removed. Object keys have no order.
pub fn normalise_policy(policy: &Value) -> Value {
    let Value::Object(policy) = policy else {
        return policy.clone();
    };
    let mut out = policy.clone();
    out.entry("Version")
        .or_insert_with(|| Value::String("2012-10-17".into()));
    if let Some(statements) = out.get_mut("Statement") {
        let list = match statements.take() {
            Value::Array(list) => list,
            one => vec![one],
        };
        let mut normal: Vec<Value> = list.iter().map(normalise_statement).collect();
        normal.sort_by_cached_key(Value::to_string);
        normal.dedup();
        *statements = Value::Array(normal);
    }
    Value::Object(out)
}

fn normalise_statement(statement: &Value) -> Value {
    let Value::Object(statement) = statement else {
        return statement.clone();
    };
    let mut out = Map::new();
    for (key, value) in statement {
        let value = match key.as_str() {
            "Sid" if value.as_str() == Some("") => continue,
            "Action" | "NotAction" | "Resource" | "NotResource" => string_set(value),
            "Principal" | "NotPrincipal" => match value {
                Value::String(s) if s == "*" => {
                    Value::Object(Map::from_iter([("AWS".into(), string_set(value))]))
                }
                Value::Object(principals) => Value::Object(
                    principals
                        .iter()
                        .map(|(k, v)| (k.clone(), string_set(v)))
                        .collect(),
                ),
                other => other.clone(),
            },
            "Condition" => match value {
                Value::Object(operators) => Value::Object(
                    operators
                        .iter()
                        .map(|(op, keys)| {
                            let keys = match keys {
                                Value::Object(keys) => Value::Object(
                                    keys.iter()
                                        .map(|(k, v)| (k.clone(), string_set(v)))
                                        .collect(),
                                ),
                                other => other.clone(),
                            };
                            (op.clone(), keys)
                        })
                        .collect(),
                ),
                other => other.clone(),
            },
            _ => value.clone(),
        };
        out.insert(key.clone(), value);
    }
    Value::Object(out)
}

/// A string or a list of scalars as a sorted list without duplicates (scalars as strings: IAM compares
/// condition values as text).
fn string_set(value: &Value) -> Value {
    let items: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        one => vec![one],
    };
    let mut texts: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Value::String(s) => texts.push(s.clone()),
            Value::Bool(_) | Value::Number(_) => texts.push(item.to_string()),
            _ => return value.clone(),
        }
    }
    texts.sort();
    texts.dedup();
    Value::Array(texts.into_iter().map(Value::String).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Action;
    use serde_json::json;

    fn bucket() -> Value {
        json!({"endpoint": "http://127.0.0.1:9000", "region": "us-east-1", "credential": "object_store",
               "name": "ds-archive", "versioning": true, "expire_after_days": null, "tags": {"team": "data"}})
    }

    fn policy() -> Value {
        json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::ds-archive/*"}]})
    }

    #[test]
    fn tags_lifecycle_and_policy_change_in_place_and_a_rename_replaces() {
        let prior = bucket();
        assert_eq!(Bucket.plan(&bucket(), &prior).action, Action::NoOp);
        for (key, value) in [
            ("tags", json!({"team": "ops"})),
            ("expire_after_days", json!(30)),
            ("policy", policy()),
            ("versioning", json!(false)),
        ] {
            let mut desired = bucket();
            desired[key] = value;
            assert_eq!(
                Bucket.plan(&desired, &prior).action,
                Action::Update,
                "{key}"
            );
        }
        let mut desired = bucket();
        desired["name"] = json!("ds-other");
        assert_eq!(Bucket.plan(&desired, &prior).action, Action::Replace);
    }

    #[test]
    fn a_policy_is_compared_in_normal_form() {
        let mut desired = bucket();
        desired["policy"] = policy();
        let mut prior = bucket();
        // What MinIO gives back for it: lists, an AWS principal, keys in another order.
        prior["policy"] = json!({"Statement": [{
            "Resource": ["arn:aws:s3:::ds-archive/*"], "Action": ["s3:GetObject"],
            "Principal": {"AWS": ["*"]}, "Effect": "Allow"}], "Version": "2012-10-17"});
        assert_eq!(Bucket.plan(&desired, &prior).action, Action::NoOp);
        let mut unversioned = policy();
        unversioned.as_object_mut().unwrap().remove("Version");
        unversioned["Statement"] = unversioned["Statement"][0].clone();
        desired["policy"] = unversioned;
        assert_eq!(Bucket.plan(&desired, &prior).action, Action::NoOp);
        prior["policy"]["Statement"][0]["Action"] = json!(["s3:GetObject", "s3:PutObject"]);
        let planned = Bucket.plan(&desired, &prior);
        assert_eq!(planned.action, Action::Update);
        assert!(!planned.changes.iter().any(|c| c.forces_replace));
    }

    #[test]
    fn statement_and_list_order_do_not_matter() {
        let a = json!({"Statement": [
            {"Effect": "Allow", "Action": ["s3:B", "s3:A"], "Resource": "r", "Sid": ""},
            {"Effect": "Deny", "Action": "s3:C", "Resource": "r",
             "Condition": {"Bool": {"aws:SecureTransport": false}}}]});
        let b = json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Deny", "Action": ["s3:C"], "Resource": ["r"],
             "Condition": {"Bool": {"aws:SecureTransport": ["false"]}}},
            {"Effect": "Allow", "Action": ["s3:A", "s3:B", "s3:A"], "Resource": ["r"]}]});
        assert_eq!(normalise_policy(&a), normalise_policy(&b));
    }

    #[test]
    fn malformed_attributes_and_names_are_refused() {
        assert!(validate(&bucket()).is_ok());
        let mut bad = bucket();
        bad["name"] = json!("Has_Upper");
        assert!(
            validate(&bad)
                .unwrap_err()
                .contains("not a valid bucket name")
        );
        let mut bad = bucket();
        bad["policy"] = json!("{}");
        assert!(validate(&bad).unwrap_err().contains("JSON object"));
        let mut bad = bucket();
        bad["colour"] = json!("red");
        assert!(validate(&bad).is_err());
        for name in ["ab", "-ab", "ab-", "a b", &"a".repeat(64)] {
            assert!(check_name(name).is_err(), "{name}");
        }
        assert!(check_name("ds-test-1.archive").is_ok());
    }
}
