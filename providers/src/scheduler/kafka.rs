//! `kafka` stores: the scheduler reads their topics of plain JSON records itself and lands them in the
//! stream's landing tables, from where a batch takes them like cdc events.
//!
//! Why not a Kafka Connect sink: the JDBC sink needs records with a Connect schema, and the only way to
//! give plain JSON one (`JsonConverter`'s `schema.content`) silently turns mistyped values into 0, false or
//! NULL (docs/research/kafka-json-landing.md). Here Postgres parses every value's text into its column's
//! type (COPY), so a value that does not fit fails the batch naming the topic, partition and offset.
//!
//! Records: a JSON object per record; each dataset column takes the field of its name (a string as its
//! text, a number, boolean, object or array as its JSON text, `null` or a missing field as NULL); other
//! fields are ignored. A tombstone (no value) whose key is a JSON object is a delete of the row its fields
//! name. The next offset to read of each partition is kept in `ds_kafka_offsets`, written in the
//! transaction that lands the records: each record lands exactly once, whatever stops the scheduler.
//!
//! The client is rskafka (pure Rust; no consumer groups, which this does not need). PLAINTEXT only today.

use std::collections::HashMap;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::SinkExt;
use rskafka::client::ClientBuilder;
use rskafka::client::partition::{OffsetAt, UnknownTopicHandling};
use serde_json::value::RawValue;

use crate::live::Ctx;
use crate::postgres::live::{Target, ident};

/// One dataset's topic and where it lands.
#[derive(Debug, Clone)]
pub struct Topic {
    /// The topic.
    pub topic: String,
    /// The landing table, schema-qualified and quoted.
    pub landing: String,
    /// The dataset's columns.
    pub columns: Vec<String>,
}

/// Lands every record published to `topics` since the last call (per partition, up to the end the broker
/// reports at the start), in transactions of up to one fetch each; returns how many records landed.
pub async fn land(
    ctx: &Ctx,
    merge: &Target,
    address: &str,
    offsets: &str,
    stream: &str,
    bootstrap: &str,
    topics: &[Topic],
) -> Result<u64, String> {
    let brokers: Vec<String> = bootstrap.split(',').map(|b| b.trim().to_string()).collect();
    let client = ClientBuilder::new(brokers)
        .client_id("ds")
        .backoff_config(rskafka::BackoffConfig {
            deadline: Some(Duration::from_secs(20)),
            ..Default::default()
        })
        .build()
        .await
        .map_err(|e| format!("connecting to Kafka at {bootstrap}: {e}"))?;
    let listed = client
        .list_topics()
        .await
        .map_err(|e| format!("listing the topics at {bootstrap}: {e}"))?;
    let mut total = 0;
    for topic in topics {
        let Some(found) = listed.iter().find(|t| t.name == topic.topic) else {
            return Err(format!(
                "topic {} does not exist at {bootstrap}: create it, or name the dataset's topic in \
                 topic_for_dataset",
                topic.topic
            ));
        };
        for &partition in &found.partitions {
            let at = |e: &dyn std::fmt::Display| {
                format!("topic {} partition {partition}: {e}", topic.topic)
            };
            let reader = client
                .partition_client(topic.topic.clone(), partition, UnknownTopicHandling::Retry)
                .await
                .map_err(|e| at(&e))?;
            let earliest = reader
                .get_offset(OffsetAt::Earliest)
                .await
                .map_err(|e| at(&e))?;
            let end = reader
                .get_offset(OffsetAt::Latest)
                .await
                .map_err(|e| at(&e))?;
            let mut db = ctx
                .postgres
                .lease(ctx, merge, address)
                .await
                .map_err(|e| e.to_string())?;
            let stored: Option<i64> = db
                .query_opt(
                    &format!(
                        "SELECT next_offset FROM {offsets} WHERE stream = $1 AND topic = $2 AND partition = $3"
                    ),
                    &[&stream, &topic.topic, &partition],
                )
                .await
                .map_err(|e| at(&super::engine::pg(&e)))?
                .map(|row| row.get(0));
            let mut next = stored.unwrap_or(earliest);
            if next < earliest {
                return Err(at(&format!(
                    "records {next}..{earliest} were deleted (retention) before they landed; to go on \
                     without them, delete this partition's row from {offsets}"
                )));
            }
            while next < end {
                let (records, _) = reader
                    .fetch_records(next, 1..8_000_000, 500)
                    .await
                    .map_err(|e| at(&e))?;
                let records: Vec<_> = records.into_iter().filter(|r| r.offset >= next).collect();
                let Some(last) = records.last().map(|r| r.offset) else {
                    // Only control records (transaction markers) were left: the next run looks again.
                    break;
                };
                let mut rows = BytesMut::new();
                for record in &records {
                    row(&topic.columns, &record.record, &mut rows)
                        .map_err(|e| at(&format!("offset {}: {e}", record.offset)))?;
                }
                let tx = db
                    .transaction()
                    .await
                    .map_err(|e| at(&super::engine::pg(&e)))?;
                let sink = tx
                    .copy_in::<_, bytes::Bytes>(&format!(
                        "COPY {} ({}, {}) FROM STDIN",
                        topic.landing,
                        topic
                            .columns
                            .iter()
                            .map(|c| ident(c))
                            .collect::<Vec<_>>()
                            .join(", "),
                        ident("__op")
                    ))
                    .await
                    .map_err(|e| at(&super::engine::pg(&e)))?;
                futures_util::pin_mut!(sink);
                let copied = async {
                    sink.send(rows.freeze()).await?;
                    sink.as_mut().finish().await
                }
                .await
                .map_err(|e| {
                    at(&format!(
                        "offsets {next}..={last}: {}",
                        super::engine::pg(&e)
                    ))
                })?;
                tx.execute(
                    &format!(
                        "INSERT INTO {offsets} (stream, topic, partition, next_offset) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (stream, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset"
                    ),
                    &[&stream, &topic.topic, &partition, &(last + 1)],
                )
                .await
                .map_err(|e| at(&super::engine::pg(&e)))?;
                tx.commit().await.map_err(|e| at(&super::engine::pg(&e)))?;
                total += copied;
                next = last + 1;
            }
        }
    }
    Ok(total)
}

/// Appends one record as a COPY text row of `columns` and `__op` (`d` for a tombstone, else NULL); a
/// tombstone without a JSON object key adds nothing.
fn row(
    columns: &[String],
    record: &rskafka::record::Record,
    out: &mut BytesMut,
) -> Result<(), String> {
    let (body, op): (&[u8], &[u8]) = match (&record.value, &record.key) {
        (Some(value), _) => (value, b"\\N"),
        (None, Some(key)) if key.trim_ascii_start().starts_with(b"{") => (key, b"d"),
        (None, _) => return Ok(()),
    };
    let fields: HashMap<String, &RawValue> = serde_json::from_slice(body).map_err(|e| {
        format!(
            "the record is not a JSON object ({e}): {}",
            String::from_utf8_lossy(&body[..body.len().min(80)])
        )
    })?;
    for column in columns {
        let value = fields.get(column).or_else(|| {
            fields
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(column))
                .map(|(_, v)| v)
        });
        match value.map(|v| v.get()) {
            None | Some("null") => out.extend_from_slice(b"\\N"),
            Some(raw) if raw.starts_with('"') => {
                let text: String = serde_json::from_str(raw).map_err(|e| e.to_string())?;
                super::rows::escape(&text, out);
            }
            Some(raw) => super::rows::escape(raw, out),
        }
        out.extend_from_slice(b"\t");
    }
    out.extend_from_slice(op);
    out.extend_from_slice(b"\n");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: Option<&str>, value: Option<&str>) -> rskafka::record::Record {
        rskafka::record::Record {
            key: key.map(|k| k.as_bytes().to_vec()),
            value: value.map(|v| v.as_bytes().to_vec()),
            headers: Default::default(),
            timestamp: Default::default(),
        }
    }

    fn rows(value: Option<&str>, key: Option<&str>) -> Result<String, String> {
        let columns: Vec<String> = ["id", "name", "amount", "tags"].map(String::from).to_vec();
        let mut out = BytesMut::new();
        row(&columns, &record(key, value), &mut out)?;
        Ok(String::from_utf8(out.to_vec()).unwrap())
    }

    #[test]
    fn json_fields_become_copy_text() {
        assert_eq!(
            rows(
                Some(r#"{"id": 12345678901234567890, "NAME": "a\tb\\c \"q\" é", "amount": 1.50, "tags": ["x", 1], "extra": 1}"#),
                None
            )
            .unwrap(),
            "12345678901234567890\ta\\tb\\\\c \"q\" é\t1.50\t[\"x\", 1]\t\\N\n"
        );
        assert_eq!(
            rows(Some(r#"{"id": 1, "name": null}"#), None).unwrap(),
            "1\t\\N\t\\N\t\\N\t\\N\n"
        );
        // A tombstone with a JSON key deletes; one without a usable key is skipped.
        assert_eq!(
            rows(None, Some(r#"{"id": 7}"#)).unwrap(),
            "7\t\\N\t\\N\t\\N\td\n"
        );
        assert_eq!(rows(None, Some("7")).unwrap(), "");
        assert!(
            rows(Some("not json"), None)
                .unwrap_err()
                .contains("not a JSON object")
        );
    }
}
