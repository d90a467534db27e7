//! The stable diagnostic codes. A code never changes meaning once released; retired codes are not reused.
//!
//! Codes are grouped by the rule of the language reference (`DS01xx` is rule 1, `DS18xx` rule 18); `DS00xx`
//! are syntax problems. `docs/diagnostics.md` lists them all and is checked against [`ALL`] by a test.

use crate::diag::Severity;

/// A diagnostic code and what it is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code {
    /// `DS0123`.
    pub code: &'static str,
    /// Default severity.
    pub severity: Severity,
    /// The rule of the language reference it checks (0: syntax).
    pub rule: u8,
    /// One line on what it means.
    pub summary: &'static str,
}

macro_rules! codes {
    ($($name:ident = $code:literal, $severity:ident, rule $rule:literal, $summary:literal;)*) => {
        $(
            #[doc = $summary]
            pub const $name: Code = Code {
                code: $code,
                severity: Severity::$severity,
                rule: $rule,
                summary: $summary,
            };
        )*
        /// Every code, in code order.
        pub const ALL: &[Code] = &[$($name),*];
    };
}

codes! {
    SYNTAX = "DS0001", Error, rule 0, "the file is not valid HCL";
    EXPRESSION = "DS0002", Error, rule 0, "only literal values are allowed: no variables, functions, operators or interpolation";

    UNKNOWN_BLOCK = "DS0101", Error, rule 1, "a block type that is not allowed here";
    UNKNOWN_ATTRIBUTE = "DS0102", Error, rule 1, "an attribute or object key that is not allowed here";
    MISSING_ATTRIBUTE = "DS0103", Error, rule 1, "a required attribute or block is missing";
    WRONG_TYPE = "DS0104", Error, rule 1, "a value of the wrong kind (string, number, bool, list, object)";
    WRONG_LABELS = "DS0105", Error, rule 1, "a block with the wrong number of labels";
    DUPLICATE_ATTRIBUTE = "DS0106", Error, rule 1, "an attribute, object key or single block written twice";
    INVALID_VALUE = "DS0107", Error, rule 1, "a value outside the allowed set";
    ECOSYSTEM_COUNT = "DS0108", Error, rule 1, "the model does not have exactly one ecosystem";
    INVALID_POLICY = "DS0109", Error, rule 1, "a bucket policy that is not a JSON object";

    INVALID_NAME = "DS0201", Error, rule 2, "a name that is not an identifier";
    RESERVED_NAME = "DS0202", Error, rule 2, "a name that is a reserved SQL key word";
    DUPLICATE_NAME = "DS0203", Error, rule 2, "a name used twice where it must be unique";

    UNDECLARED_ZONE = "DS0301", Error, rule 3, "a zone defined without a zone_declaration";
    UNDECLARED_TEAM = "DS0302", Error, rule 3, "a team defined without a team_declaration in its zone";
    UNDEFINED_DECLARATION = "DS0303", Warning, rule 3, "a zone or team declared but not defined";

    INVALID_REPO = "DS0401", Error, rule 4, "a repository that is not owner/name with a branch";
    MISSING_OWNING_REPO = "DS0402", Error, rule 4, "an owning_repo that must be set is missing";

    INVALID_TYPE = "DS0501", Error, rule 5, "a column type that does not parse";
    INVALID_SIZE = "DS0502", Error, rule 5, "a type size that is not positive";
    DECIMAL_SCALE = "DS0503", Error, rule 5, "a decimal whose scale exceeds its precision";

    UNKNOWN_KEY_COLUMN = "DS0601", Error, rule 6, "a primary or partition key names a column that does not exist";
    NULLABLE_KEY_COLUMN = "DS0602", Error, rule 6, "a primary or partition key column is nullable";
    PRIMARY_KEY_MISMATCH = "DS0603", Error, rule 6, "the primary_key list disagrees with the columns' primary_key flags";
    NO_PRIMARY_KEY = "DS0604", Warning, rule 6, "a dataset without a primary key: every column is its key";

    CLASSIFICATION_TWICE = "DS0701", Error, rule 7, "classifications on a dataset and on its columns";
    UNCLASSIFIED_PRODUCTION = "DS0702", Error, rule 7, "a dataset of a PRODUCTION store without classifications";
    INVALID_CLASSIFICATION = "DS0703", Error, rule 7, "a classification that is not TYPE or TYPE:name";

    CAPTURE_COUNT = "DS0801", Error, rule 8, "a datastore without exactly one capture";
    NO_DATASETS = "DS0802", Error, rule 8, "a datastore without datasets";
    INVALID_TRIGGER = "DS0803", Error, rule 8, "a trigger that does not parse";
    MISSING_CREDENTIAL = "DS0804", Error, rule 8, "a capture without the credential its kind needs";
    MISSING_SOURCE = "DS0805", Error, rule 8, "a capture without the source its kind needs";

    CDC_SOURCE = "DS0901", Error, rule 9, "a cdc capture whose source is not Postgres";
    CDC_PRIMARY_KEY = "DS0902", Error, rule 9, "a dataset of a cdc store without a primary key";

    WATERMARK_COLUMN = "DS1001", Error, rule 10, "a watermark column missing from a dataset";
    WATERMARK_TYPE = "DS1002", Error, rule 10, "a watermark column that is neither an integer nor a timestamp";
    MISSING_WATERMARK = "DS1003", Error, rule 10, "an sql_watermark capture without a watermark";

    UNKNOWN_MAPPED_DATASET = "DS1101", Error, rule 11, "table_for_dataset or topic_for_dataset names a dataset the store does not have";

    EMPTY_GROUP = "DS1201", Error, rule 12, "a dataset group without sinks";
    UNKNOWN_STORE = "DS1202", Error, rule 12, "a sink names a datastore that does not exist";
    UNKNOWN_DATASET = "DS1203", Error, rule 12, "a sink names a dataset its store does not have";

    DEPRECATED_CONSUMED = "DS1301", Error, rule 13, "a deprecated dataset or store consumed without deprecations_allowed";
    DEPRECATED_ALLOWED = "DS1302", Warning, rule 13, "a deprecated dataset or store consumed with deprecations_allowed";

    ZONE_CLASSIFICATION = "DS1401", Error, rule 14, "a consumed dataset's classification refused by the workspace zone's policy";
    VERIFIER_CLASSIFICATION = "DS1402", Error, rule 14, "a consumed dataset's classification refused by the workspace's classification_verifier";

    LOCATION_POLICY = "DS1501", Error, rule 15, "a platform location refused by the producing zone's location policy";
    VENDOR_POLICY = "DS1502", Error, rule 15, "a platform vendor refused by the producing zone's vendor policy";
    UNKNOWN_LOCATION = "DS1503", Error, rule 15, "a location that is not in any vendor's location tree";

    NO_DATA_PLATFORM = "DS1601", Error, rule 16, "a dataset group that no data platform can serve";
    AMBIGUOUS_DATA_PLATFORM = "DS1602", Error, rule 16, "a dataset group that several data platforms could serve";
    DATA_PLATFORM_POLICY = "DS1603", Error, rule 16, "a data platform refused by the workspace zone's data_platform_policy";
    MILESTONING_MISMATCH = "DS1604", Error, rule 16, "an assigned data platform without the milestoning the group requires";
    UNKNOWN_ASSIGNMENT = "DS1605", Error, rule 16, "an assignment for a workspace or dataset group that does not exist";
    WORKSPACE_PLATFORMS = "DS1606", Error, rule 16, "a workspace whose dataset groups are served by data platforms of different platforms";

    TRANSFORMER_OUTPUT = "DS1701", Error, rule 17, "a transformer output store that belongs to another team or is malformed";
    TRANSFORMER_INPUT = "DS1702", Error, rule 17, "transformer SQL that references something other than its own groups' sinks";
    TRANSFORMER_REQUIREMENTS = "DS1703", Error, rule 17, "a dataset group of a transformer workspace with requirements";
    TRANSFORMER_CYCLE = "DS1704", Error, rule 17, "transformers that consume each other's output in a cycle";
    TRANSFORMER_COUNT = "DS1705", Error, rule 17, "a workspace with more than one transformer";

    UNKNOWN_BUCKET = "DS1801", Error, rule 18, "a bucket that is named but not defined";
    UNKNOWN_DATA_PLATFORM = "DS1802", Error, rule 18, "a data platform that is named but not defined";
    STATE_BACKEND = "DS1803", Error, rule 18, "incomplete or unknown state backend settings";
    MISSING_KAFKA_CONNECT = "DS1804", Error, rule 18, "a platform that ingests cdc or kafka stores without kafka_connect";
    CREDENTIALS_SOURCE = "DS1805", Error, rule 18, "incomplete or unknown credentials settings";
    MISSING_MERGE_DB = "DS1806", Error, rule 18, "a platform without a merge_db";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_sorted_and_every_rule_has_one() {
        for pair in ALL.windows(2) {
            assert!(
                pair[0].code < pair[1].code,
                "{} then {}",
                pair[0].code,
                pair[1].code
            );
        }
        for rule in 1..=18u8 {
            assert!(
                ALL.iter().any(|c| c.rule == rule),
                "rule {rule} has no code"
            );
        }
        for code in ALL {
            let group: u8 = code.code[2..4].parse().unwrap();
            assert_eq!(
                group, code.rule,
                "{} is filed under the wrong rule",
                code.code
            );
        }
    }
}
