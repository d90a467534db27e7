//! Column types: parsing, the Postgres type each maps to, and which changes are backwards compatible.

use std::fmt;

/// A column type of the model language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnType {
    /// `boolean`
    Boolean,
    /// `smallint`
    Smallint,
    /// `integer`
    Integer,
    /// `bigint`
    Bigint,
    /// `real`
    Real,
    /// `double`
    Double,
    /// `decimal(P,S)`
    Decimal {
        /// Precision.
        precision: u32,
        /// Scale.
        scale: u32,
    },
    /// `char(n)`
    Char(u32),
    /// `varchar(n)`, or unbounded `varchar`.
    Varchar(Option<u32>),
    /// `text`
    Text,
    /// `date`
    Date,
    /// `timestamp`
    Timestamp,
    /// `timestamptz`
    Timestamptz,
    /// `interval`
    Interval,
    /// `json`
    Json,
    /// `uuid`
    Uuid,
    /// `bytea`
    Bytea,
}

/// The type names, for "did you mean".
pub const TYPE_NAMES: &[&str] = &[
    "boolean",
    "smallint",
    "integer",
    "bigint",
    "real",
    "double",
    "decimal",
    "char",
    "varchar",
    "text",
    "date",
    "timestamp",
    "timestamptz",
    "interval",
    "json",
    "uuid",
    "bytea",
];

/// Why a type did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeError {
    /// Not a type of the language (or malformed arguments).
    Unknown,
    /// A size or precision of zero or less, or too large.
    BadSize(String),
    /// `decimal(P,S)` with `S > P`.
    ScaleAbovePrecision {
        /// P.
        precision: u32,
        /// S.
        scale: u32,
    },
}

impl ColumnType {
    /// Parses a type, case-insensitively, with optional spaces inside the parentheses.
    pub fn parse(text: &str) -> Result<ColumnType, TypeError> {
        let lower = text.trim().to_ascii_lowercase();
        let (base, args) = match lower.split_once('(') {
            Some((base, rest)) => {
                let inner = rest.strip_suffix(')').ok_or(TypeError::Unknown)?;
                (base.trim(), Some(inner))
            }
            None => (lower.as_str(), None),
        };
        let sizes = |inner: &str| -> Result<Vec<i64>, TypeError> {
            inner
                .split(',')
                .map(|part| part.trim().parse::<i64>().map_err(|_| TypeError::Unknown))
                .collect()
        };
        let positive = |n: i64, what: &str| -> Result<u32, TypeError> {
            if n <= 0 {
                Err(TypeError::BadSize(format!(
                    "{what} must be positive, not {n}"
                )))
            } else if n > 10_485_760 {
                Err(TypeError::BadSize(format!("{what} {n} is too large")))
            } else {
                Ok(n as u32)
            }
        };
        let simple = match base {
            "boolean" | "bool" => Some(ColumnType::Boolean),
            "smallint" => Some(ColumnType::Smallint),
            "integer" | "int" => Some(ColumnType::Integer),
            "bigint" => Some(ColumnType::Bigint),
            "real" => Some(ColumnType::Real),
            "double" => Some(ColumnType::Double),
            "text" => Some(ColumnType::Text),
            "date" => Some(ColumnType::Date),
            "timestamp" => Some(ColumnType::Timestamp),
            "timestamptz" => Some(ColumnType::Timestamptz),
            "interval" => Some(ColumnType::Interval),
            "json" => Some(ColumnType::Json),
            "uuid" => Some(ColumnType::Uuid),
            "bytea" => Some(ColumnType::Bytea),
            _ => None,
        };
        if let Some(ty) = simple {
            return if args.is_none() {
                Ok(ty)
            } else {
                Err(TypeError::Unknown)
            };
        }
        match (base, args) {
            ("varchar", None) => Ok(ColumnType::Varchar(None)),
            ("varchar", Some(inner)) => match sizes(inner)?.as_slice() {
                [n] => Ok(ColumnType::Varchar(Some(positive(*n, "length")?))),
                _ => Err(TypeError::Unknown),
            },
            ("char", Some(inner)) => match sizes(inner)?.as_slice() {
                [n] => Ok(ColumnType::Char(positive(*n, "length")?)),
                _ => Err(TypeError::Unknown),
            },
            ("decimal", Some(inner)) => match sizes(inner)?.as_slice() {
                [p, s] => {
                    let precision = positive(*p, "precision")?;
                    if precision > 1000 {
                        return Err(TypeError::BadSize(format!(
                            "precision {precision} is above 1000"
                        )));
                    }
                    if *s < 0 {
                        return Err(TypeError::BadSize(format!(
                            "scale must not be negative, not {s}"
                        )));
                    }
                    let scale = *s as u32;
                    if scale > precision {
                        return Err(TypeError::ScaleAbovePrecision { precision, scale });
                    }
                    Ok(ColumnType::Decimal { precision, scale })
                }
                _ => Err(TypeError::Unknown),
            },
            _ => Err(TypeError::Unknown),
        }
    }

    /// The PostgreSQL type of the same meaning.
    pub fn postgres(&self) -> String {
        match self {
            ColumnType::Boolean => "boolean".into(),
            ColumnType::Smallint => "smallint".into(),
            ColumnType::Integer => "integer".into(),
            ColumnType::Bigint => "bigint".into(),
            ColumnType::Real => "real".into(),
            ColumnType::Double => "double precision".into(),
            ColumnType::Decimal { precision, scale } => format!("numeric({precision},{scale})"),
            ColumnType::Char(n) => format!("character({n})"),
            ColumnType::Varchar(Some(n)) => format!("character varying({n})"),
            ColumnType::Varchar(None) => "character varying".into(),
            ColumnType::Text => "text".into(),
            ColumnType::Date => "date".into(),
            ColumnType::Timestamp => "timestamp without time zone".into(),
            ColumnType::Timestamptz => "timestamp with time zone".into(),
            ColumnType::Interval => "interval".into(),
            ColumnType::Json => "jsonb".into(),
            ColumnType::Uuid => "uuid".into(),
            ColumnType::Bytea => "bytea".into(),
        }
    }

    /// Whether the type is an integer type (usable as a watermark).
    pub fn is_integer(&self) -> bool {
        matches!(
            self,
            ColumnType::Smallint | ColumnType::Integer | ColumnType::Bigint
        )
    }

    /// Whether the type is a timestamp type (usable as a watermark).
    pub fn is_timestamp(&self) -> bool {
        matches!(self, ColumnType::Timestamp | ColumnType::Timestamptz)
    }

    /// Whether a column of this type may become `new` without losing any value: the backwards-compatible
    /// changes of the language reference. The same type is compatible with itself.
    pub fn widens_to(&self, new: &ColumnType) -> bool {
        use ColumnType::*;
        if self == new {
            return true;
        }
        match (self, new) {
            (Smallint, Integer | Bigint) | (Integer, Bigint) => true,
            (Real, Double) => true,
            (
                Decimal {
                    precision: p,
                    scale: s,
                },
                Decimal {
                    precision: p2,
                    scale: s2,
                },
            ) => p2 - s2 >= p - s && s2 >= s,
            (Char(n) | Varchar(Some(n)), Varchar(Some(m))) => m >= n,
            (Char(_) | Varchar(_), Varchar(None) | Text) => true,
            (Date, Timestamp) => true,
            _ => false,
        }
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColumnType::Boolean => f.write_str("boolean"),
            ColumnType::Smallint => f.write_str("smallint"),
            ColumnType::Integer => f.write_str("integer"),
            ColumnType::Bigint => f.write_str("bigint"),
            ColumnType::Real => f.write_str("real"),
            ColumnType::Double => f.write_str("double"),
            ColumnType::Decimal { precision, scale } => write!(f, "decimal({precision},{scale})"),
            ColumnType::Char(n) => write!(f, "char({n})"),
            ColumnType::Varchar(Some(n)) => write!(f, "varchar({n})"),
            ColumnType::Varchar(None) => f.write_str("varchar"),
            ColumnType::Text => f.write_str("text"),
            ColumnType::Date => f.write_str("date"),
            ColumnType::Timestamp => f.write_str("timestamp"),
            ColumnType::Timestamptz => f.write_str("timestamptz"),
            ColumnType::Interval => f.write_str("interval"),
            ColumnType::Json => f.write_str("json"),
            ColumnType::Uuid => f.write_str("uuid"),
            ColumnType::Bytea => f.write_str("bytea"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ty(text: &str) -> ColumnType {
        ColumnType::parse(text).unwrap()
    }

    #[test]
    fn parses_every_type_case_insensitively() {
        for name in TYPE_NAMES {
            let text = match *name {
                "decimal" => "DECIMAL(10, 2)".to_string(),
                "char" => "Char(3)".to_string(),
                other => other.to_uppercase(),
            };
            let parsed = ty(&text);
            assert_eq!(ColumnType::parse(&parsed.to_string()), Ok(parsed), "{text}");
        }
        assert_eq!(ty("varchar(20)"), ColumnType::Varchar(Some(20)));
        assert_eq!(ty("varchar"), ColumnType::Varchar(None));
    }

    #[test]
    fn rejects_bad_types_and_sizes() {
        assert_eq!(ColumnType::parse("strng"), Err(TypeError::Unknown));
        assert_eq!(ColumnType::parse("varchar(a)"), Err(TypeError::Unknown));
        assert_eq!(ColumnType::parse("integer(3)"), Err(TypeError::Unknown));
        assert_eq!(ColumnType::parse("char"), Err(TypeError::Unknown));
        assert!(matches!(
            ColumnType::parse("varchar(0)"),
            Err(TypeError::BadSize(_))
        ));
        assert!(matches!(
            ColumnType::parse("char(-1)"),
            Err(TypeError::BadSize(_))
        ));
        assert_eq!(
            ColumnType::parse("decimal(2,5)"),
            Err(TypeError::ScaleAbovePrecision {
                precision: 2,
                scale: 5
            })
        );
    }

    #[test]
    fn widening_follows_the_language_reference() {
        let ok = [
            ("smallint", "integer"),
            ("smallint", "bigint"),
            ("integer", "bigint"),
            ("real", "double"),
            ("decimal(10,2)", "decimal(12,2)"),
            ("decimal(10,2)", "decimal(11,3)"),
            ("char(5)", "varchar(5)"),
            ("varchar(10)", "varchar(20)"),
            ("varchar(10)", "text"),
            ("varchar(10)", "varchar"),
            ("date", "timestamp"),
            ("uuid", "uuid"),
        ];
        for (old, new) in ok {
            assert!(ty(old).widens_to(&ty(new)), "{old} -> {new}");
        }
        let refused = [
            ("integer", "smallint"),
            ("bigint", "integer"),
            ("double", "real"),
            ("decimal(10,2)", "decimal(10,3)"),
            ("decimal(10,2)", "decimal(12,1)"),
            ("varchar(20)", "varchar(10)"),
            ("text", "varchar(10)"),
            ("timestamp", "timestamptz"),
            ("timestamp", "date"),
            ("integer", "text"),
        ];
        for (old, new) in refused {
            assert!(!ty(old).widens_to(&ty(new)), "{old} -> {new}");
        }
    }
}
