//! Kafka Connect: the generic connector the Debezium resources build on, and the sink that lands a `kafka`
//! store's topics in a data platform's landing tables.

pub mod client;
pub mod live;

use serde_json::{Value, json};

use crate::kind::{AttributeChange, Planned, ResourceKind, action_of, diff_attributes};

/// `kafka_connect_connector`: a connector with a name and a config map.
pub struct Connector;

/// The connector kinds' IO (no Debezium signal).
pub static LIVE: live::ConnectorLive = live::ConnectorLive {
    debezium_source: false,
};

impl ResourceKind for Connector {
    fn name(&self) -> &'static str {
        "kafka_connect_connector"
    }
    fn provider(&self) -> &'static str {
        "kafka_connect"
    }
    fn replace_on(&self) -> &'static [&'static str] {
        REPLACE_ON
    }
    fn sensitive(&self) -> &'static [&'static str] {
        &[crate::kafka_connect::live::FINGERPRINT]
    }
    fn plan(&self, desired: &Value, prior: &Value) -> Planned {
        plan(desired, prior)
    }
    fn validate(&self, attributes: &Value) -> Result<(), String> {
        validate(attributes)
    }
    fn live(&self) -> Option<&dyn crate::live::Live> {
        Some(&LIVE)
    }
}

/// A connector moves (is deleted and created again) when its cluster or name changes.
pub const REPLACE_ON: &[&str] = &["connect_url", "name"];

/// Plans a connector: the attributes are compared as usual, except the recorded secret fingerprint, which
/// the model does not have: a read marks it [`live::STALE`] when the credential changed since the apply,
/// and that is planned as an update (the tasks restart to read the new secret).
pub fn plan(desired: &Value, prior: &Value) -> Planned {
    let mut prior = prior.clone();
    let stale = prior
        .as_object_mut()
        .and_then(|p| p.remove(live::FINGERPRINT))
        .is_some_and(|f| f == json!(live::STALE));
    let mut planned = diff_attributes(desired, &prior, REPLACE_ON, &[]);
    if stale {
        planned.changes.push(AttributeChange {
            path: live::FINGERPRINT.into(),
            before: Some(json!("(sensitive)")),
            after: Some(json!("(sensitive)")),
            forces_replace: false,
            sensitive: true,
        });
        planned.action = action_of(&planned.changes);
    }
    planned
}

/// A connector's attributes: a Connect URL, a name, and a config of strings with a connector class.
pub fn validate(attributes: &Value) -> Result<(), String> {
    for key in ["connect_url", "name"] {
        if attributes
            .get(key)
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(format!("`{key}` must be a non-empty string"));
        }
    }
    let Some(config) = attributes.get("config").and_then(Value::as_object) else {
        return Err("`config` must be an object".into());
    };
    if let Some((key, _)) = config.iter().find(|(_, v)| !v.is_string()) {
        return Err(format!(
            "`config.{key}` must be a string (Connect configs are strings)"
        ));
    }
    if !config.contains_key("connector.class") {
        return Err("`config` has no `connector.class`".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Action;

    fn connector() -> Value {
        json!({"connect_url": "http://127.0.0.1:8083", "name": "c",
               "config": {"connector.class": "X", "topics": "t"}})
    }

    #[test]
    fn the_fingerprint_is_not_compared_unless_stale() {
        let desired = connector();
        let mut prior = connector();
        prior[live::FINGERPRINT] = json!("0123456789abcdef");
        assert_eq!(plan(&desired, &prior).action, Action::NoOp);
        prior[live::FINGERPRINT] = json!(live::STALE);
        let planned = plan(&desired, &prior);
        assert_eq!(planned.action, Action::Update);
        assert!(planned.changes[0].sensitive);
    }

    #[test]
    fn a_config_change_updates_and_a_rename_replaces() {
        let prior = connector();
        let mut desired = connector();
        desired["config"]["topics"] = json!("u");
        assert_eq!(plan(&desired, &prior).action, Action::Update);
        desired["name"] = json!("d");
        assert_eq!(plan(&desired, &prior).action, Action::Replace);
    }

    #[test]
    fn malformed_attributes_are_refused() {
        assert!(validate(&connector()).is_ok());
        let mut bad = connector();
        bad["config"]["tasks.max"] = json!(1);
        assert!(validate(&bad).unwrap_err().contains("tasks.max"));
        assert!(validate(&json!({"name": "c"})).is_err());
    }
}
