//! Names: the identifier rule, PostgreSQL's reserved key words, and "did you mean" suggestions.

/// Key words that PostgreSQL lists as *reserved* (SQL Key Words appendix; `kwlist.h` `RESERVED_KEYWORD`).
/// Non-reserved words (`name`, `key`, `date`, `status`) are fine as names.
pub const RESERVED_WORDS: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "both",
    "case",
    "cast",
    "check",
    "collate",
    "column",
    "constraint",
    "create",
    "current_catalog",
    "current_date",
    "current_role",
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
    "from",
    "grant",
    "group",
    "having",
    "in",
    "initially",
    "intersect",
    "into",
    "lateral",
    "leading",
    "limit",
    "localtime",
    "localtimestamp",
    "not",
    "null",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "placing",
    "primary",
    "references",
    "returning",
    "select",
    "session_user",
    "some",
    "symmetric",
    "system_user",
    "table",
    "then",
    "to",
    "trailing",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "variadic",
    "when",
    "where",
    "window",
    "with",
];

/// What is wrong with a name, if anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameProblem {
    /// Does not match `^[A-Za-z][A-Za-z0-9_]{0,62}$`.
    NotIdentifier,
    /// A reserved SQL key word.
    Reserved,
}

/// Checks the identifier rule of the language reference.
pub fn check_identifier(name: &str) -> Option<NameProblem> {
    let bytes = name.as_bytes();
    let shape_ok = !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_alphabetic()
        && bytes[1..]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_');
    if !shape_ok {
        return Some(NameProblem::NotIdentifier);
    }
    let lower = name.to_ascii_lowercase();
    if RESERVED_WORDS.binary_search(&lower.as_str()).is_ok() {
        return Some(NameProblem::Reserved);
    }
    None
}

/// The closest candidate to `word`, when one is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let word_lower = word.to_ascii_lowercase();
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (edit_distance(&word_lower, &c.to_ascii_lowercase()), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Levenshtein distance (case-sensitive), with an adjacent transposition counted as one edit.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev2: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                cur[j] = cur[j].min(prev2[j - 2] + 1);
            }
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_words_are_sorted_for_binary_search() {
        assert!(RESERVED_WORDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn identifiers() {
        assert_eq!(check_identifier("customers"), None);
        assert_eq!(check_identifier("Customer_2"), None);
        assert_eq!(check_identifier("name"), None);
        assert_eq!(check_identifier("status"), None);
        assert_eq!(check_identifier("a".repeat(63).as_str()), None);
        assert_eq!(
            check_identifier("a".repeat(64).as_str()),
            Some(NameProblem::NotIdentifier)
        );
        assert_eq!(check_identifier("2x"), Some(NameProblem::NotIdentifier));
        assert_eq!(check_identifier("_x"), Some(NameProblem::NotIdentifier));
        assert_eq!(check_identifier("a-b"), Some(NameProblem::NotIdentifier));
        assert_eq!(check_identifier(""), Some(NameProblem::NotIdentifier));
        assert_eq!(check_identifier("SELECT"), Some(NameProblem::Reserved));
        assert_eq!(check_identifier("user"), Some(NameProblem::Reserved));
    }

    #[test]
    fn suggestions() {
        let known = ["production_status", "deprecated", "documentation"];
        assert_eq!(
            did_you_mean("prodution_status", known),
            Some("production_status")
        );
        assert_eq!(did_you_mean("depercated", known), Some("deprecated"));
        assert_eq!(did_you_mean("colour", known), None);
        assert_eq!(edit_distance("ab", "ba"), 1);
    }
}
