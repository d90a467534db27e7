//! Row hashes computed while a snapshot streams through `ds`: each row of `COPY ... TO STDOUT` (text
//! format) gets its key hash, content hash and batch id appended, ready for `COPY ... FROM STDIN` into
//! staging. Computing them here rather than in the source's SELECT keeps the source database's one backend
//! from spending most of its time in `md5()` (measured: two `md5()` a row cost five times the COPY itself).
//!
//! The hashes are exactly those of [`super::engine::hash_sql`]: MD5 over each non-NULL column as
//! `<name>=<length in characters>:<text>`, in order, where the text is the column's text form (what COPY
//! writes, with its backslash escapes undone).

use bytes::BytesMut;
use md5::{Digest, Md5};

/// Appends hashes to COPY text rows of a fixed column list.
pub struct RowHasher {
    names: Vec<String>,
    /// Positions of the key columns, in key order.
    key: Vec<usize>,
    /// `\t<batch>\n`.
    tail: Vec<u8>,
}

impl RowHasher {
    /// For rows of `columns`, keyed by `key` (column names), in batch `batch`.
    pub fn new(columns: &[String], key: &[String], batch: i32) -> RowHasher {
        RowHasher {
            names: columns.to_vec(),
            key: key
                .iter()
                .filter_map(|k| columns.iter().position(|c| c == k))
                .collect(),
            tail: format!("\t{batch}\n").into_bytes(),
        }
    }

    /// Appends `line` (one row, without its newline) and `\t<key hash>\t<all hash>\t<batch>\n` to `out`.
    pub fn row(&self, line: &[u8], out: &mut BytesMut) {
        let mut fields: Vec<&[u8]> = Vec::with_capacity(self.names.len());
        fields.extend(line.split(|b| *b == b'\t'));
        let mut all = Md5::new();
        for (name, field) in self.names.iter().zip(&fields) {
            feed(&mut all, name, field);
        }
        let mut key = Md5::new();
        for &i in &self.key {
            if let (Some(name), Some(field)) = (self.names.get(i), fields.get(i)) {
                feed(&mut key, name, field);
            }
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\t");
        hex(&key.finalize(), out);
        out.extend_from_slice(b"\t");
        hex(&all.finalize(), out);
        out.extend_from_slice(&self.tail);
    }
}

/// Feeds `<name>=<length>:<text>` of one COPY field (nothing for `\N`).
fn feed(hash: &mut Md5, name: &str, field: &[u8]) {
    if field == b"\\N" {
        return;
    }
    let text = unescape(field);
    let chars = text.iter().filter(|b| (**b & 0xC0) != 0x80).count();
    hash.update(name.as_bytes());
    hash.update(b"=");
    hash.update(chars.to_string().as_bytes());
    hash.update(b":");
    hash.update(&text);
}

/// Undoes COPY's text-format escapes.
fn unescape(field: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if !field.contains(&b'\\') {
        return std::borrow::Cow::Borrowed(field);
    }
    let mut out = Vec::with_capacity(field.len());
    let mut bytes = field.iter();
    while let Some(&b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match bytes.next() {
            Some(b'b') => out.push(8),
            Some(b'f') => out.push(12),
            Some(b'n') => out.push(b'\n'),
            Some(b'r') => out.push(b'\r'),
            Some(b't') => out.push(b'\t'),
            Some(b'v') => out.push(11),
            Some(&other) => out.push(other),
            None => out.push(b'\\'),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Appends `value` in COPY's text format (backslash, tab, newline and carriage return escaped).
pub fn escape(value: &str, out: &mut BytesMut) {
    for &b in value.as_bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.extend_from_slice(&[b]),
        }
    }
}

fn hex(digest: &[u8], out: &mut BytesMut) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in digest {
        out.extend_from_slice(&[HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashes(columns: &[&str], key: &[&str], line: &str) -> String {
        let columns: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
        let key: Vec<String> = key.iter().map(|c| c.to_string()).collect();
        let mut out = BytesMut::new();
        RowHasher::new(&columns, &key, 7).row(line.as_bytes(), &mut out);
        String::from_utf8(out.to_vec()).unwrap()
    }

    fn md5_hex(text: &str) -> String {
        let mut out = BytesMut::new();
        hex(&Md5::digest(text.as_bytes()), &mut out);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn values_are_escaped_for_copy() {
        let mut out = BytesMut::new();
        escape("a\tb\\c\nd\re", &mut out);
        assert_eq!(&out[..], b"a\\tb\\\\c\\nd\\re");
    }

    #[test]
    fn rows_get_the_hashes_the_sql_computes() {
        let row = hashes(&["id", "name", "note"], &["id"], "1\tab\\tc\t\\N");
        let fields: Vec<&str> = row.trim_end().split('\t').collect();
        assert_eq!(fields[..4], ["1", "ab\\tc", "\\N", &md5_hex("id=1:1")]);
        // The tab is one character of the text; the NULL column adds nothing.
        assert_eq!(fields[4], md5_hex("id=1:1name=4:ab\tc"));
        assert_eq!(fields[5], "7");
        // Separators and NULLs count: these differ.
        let a = hashes(&["a", "b"], &["a"], "ab\tc");
        let b = hashes(&["a", "b"], &["a"], "a\tbc");
        assert_ne!(a.split('\t').nth(3), b.split('\t').nth(3));
        let null = hashes(&["a", "b"], &["a"], "x\t\\N");
        let empty = hashes(&["a", "b"], &["a"], "x\t");
        assert_ne!(null.split('\t').nth(3), empty.split('\t').nth(3));
        // Lengths are in characters.
        let accented = hashes(&["a"], &["a"], "é");
        assert!(accented.contains(&md5_hex("a=1:é")));
    }
}
