//! Debezium resources of a `cdc` store: on the source database a publication and a logical replication
//! slot; on Kafka Connect the Postgres source connector and, per ingesting data platform, a JDBC sink
//! connector that lands change events in the landing tables.

use serde_json::Value;

use crate::kind::{Planned, ResourceKind};

/// The source connector's IO: a connector that also signals incremental snapshots of added tables.
static SOURCE_LIVE: crate::kafka_connect::live::ConnectorLive =
    crate::kafka_connect::live::ConnectorLive {
        debezium_source: true,
    };

/// `debezium_publication`: `CREATE PUBLICATION ... FOR TABLE ...` on the source database.
pub struct Publication;

impl ResourceKind for Publication {
    fn name(&self) -> &'static str {
        "debezium_publication"
    }
    fn live(&self) -> Option<&dyn crate::live::Live> {
        Some(&crate::postgres::live::PublicationLive)
    }
    fn provider(&self) -> &'static str {
        "debezium"
    }
    fn replace_on(&self) -> &'static [&'static str] {
        &["database", "name"]
    }
}

/// `debezium_slot`: a `pgoutput` logical replication slot. Its position is data (changes not yet read),
/// so it is protected; a slot left behind pins WAL, so deleting the store drops it.
pub struct Slot;

impl ResourceKind for Slot {
    fn name(&self) -> &'static str {
        "debezium_slot"
    }
    fn live(&self) -> Option<&dyn crate::live::Live> {
        Some(&crate::postgres::live::SlotLive)
    }
    fn provider(&self) -> &'static str {
        "debezium"
    }
    fn protected(&self) -> bool {
        true
    }
    fn replace_on(&self) -> &'static [&'static str] {
        &["database", "name", "plugin"]
    }
}

/// `debezium_source`: the Debezium Postgres source connector (one per store).
pub struct Source;

impl ResourceKind for Source {
    fn name(&self) -> &'static str {
        "debezium_source"
    }
    fn provider(&self) -> &'static str {
        "debezium"
    }
    fn replace_on(&self) -> &'static [&'static str] {
        crate::kafka_connect::REPLACE_ON
    }
    fn sensitive(&self) -> &'static [&'static str] {
        &[crate::kafka_connect::live::FINGERPRINT]
    }
    fn plan(&self, desired: &Value, prior: &Value) -> Planned {
        crate::kafka_connect::plan(desired, prior)
    }
    fn validate(&self, attributes: &Value) -> Result<(), String> {
        crate::kafka_connect::validate(attributes)
    }
    fn live(&self) -> Option<&dyn crate::live::Live> {
        Some(&SOURCE_LIVE)
    }
}

/// `debezium_sink`: the Debezium JDBC sink connector landing a store's topics in one data platform.
pub struct Sink;

impl ResourceKind for Sink {
    fn name(&self) -> &'static str {
        "debezium_sink"
    }
    fn provider(&self) -> &'static str {
        "debezium"
    }
    fn replace_on(&self) -> &'static [&'static str] {
        crate::kafka_connect::REPLACE_ON
    }
    fn sensitive(&self) -> &'static [&'static str] {
        &[crate::kafka_connect::live::FINGERPRINT]
    }
    fn plan(&self, desired: &Value, prior: &Value) -> Planned {
        crate::kafka_connect::plan(desired, prior)
    }
    fn validate(&self, attributes: &Value) -> Result<(), String> {
        crate::kafka_connect::validate(attributes)
    }
    fn live(&self) -> Option<&dyn crate::live::Live> {
        Some(&crate::kafka_connect::LIVE)
    }
}
