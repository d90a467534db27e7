//! Kafka Connect: the generic connector the Debezium resources build on, and the sink that lands a `kafka`
//! store's topics in a data platform's landing tables.

use crate::kind::ResourceKind;

/// `kafka_connect_connector`: a connector with a name and a config map.
pub struct Connector;

impl ResourceKind for Connector {
    fn name(&self) -> &'static str {
        "kafka_connect_connector"
    }
    fn provider(&self) -> &'static str {
        "kafka_connect"
    }
    fn replace_on(&self) -> &'static [&'static str] {
        &["connect_url", "name"]
    }
}
