//! Canonical layout of model files (`ds fmt`).
//!
//! [`format_source`] rewrites one `*.ds.hcl` file into the layout `terraform fmt` users expect,
//! keeping every comment and never touching the inside of strings, comments or heredoc bodies:
//!
//! - two spaces of indentation per nesting level; a line that starts with a closing bracket sits at
//!   the level of the line that opened it;
//! - the `=` of consecutive attribute lines at the same level is aligned to one column; a run is
//!   broken by a blank line, a comment-only line, a block header, any other non-attribute line or a
//!   change of level, and ends after an attribute whose value continues over several lines;
//! - one space around `=`, after `,` (none before it), between a block's type, labels and `{`,
//!   and inside non-empty one-line braces (`{ a = 1 }`); before a trailing comment;
//! - trailing whitespace removed, runs of blank lines collapsed to one, no blank line at the start
//!   of the file, directly after a line that opens a bracket or directly before a line that
//!   closes one, exactly one final newline (an empty file stays empty), `\r\n` turned into `\n`;
//! - the body of a `<<-` (indented) heredoc is shifted as a whole so that its least-indented line
//!   sits one level deeper than the line that opens it, when that provably does not change the
//!   string (spaces only, no whitespace-only line, no template sequence); every other heredoc body
//!   and closing delimiter is kept byte for byte.
//!
//! The work is a single linear pass of a small lexer that splits the source into tokens and
//! logical lines (a line extends over the physical lines of a multi-line token: a heredoc, a
//! `/* */` comment or a string containing a newline), then a rendering pass. Whatever spacing no
//! rule above governs is kept as written. The formatting is idempotent. Input the lexer cannot
//! make sense of (an unterminated string, comment or heredoc, unbalanced brackets, a `<<` that
//! opens no heredoc, an empty heredoc that hcl-edit would read up to a later delimiter line) is
//! returned unchanged.

use std::borrow::Cow;

/// Returns the canonical layout of one model file.
///
/// The input is expected to be syntactically valid HCL (the caller parsed it first). This never
/// panics: if the lexer meets something it cannot make sense of (an unterminated string, block
/// comment or heredoc, unbalanced brackets), the input is returned unchanged.
pub fn format_source(source: &str) -> String {
    let text: Cow<'_, str> = if source.contains('\r') {
        Cow::Owned(normalise_line_endings(source))
    } else {
        Cow::Borrowed(source)
    };
    match lex(&text) {
        Some(lexed) => render(&lexed, text.len()),
        None => source.to_owned(),
    }
}

/// Turns `\r\n` line endings into `\n`. Every `\r` that ends a line goes, so that a stray one
/// before a `\r\n` cannot make a `\r\n` reappear (which would break idempotency).
fn normalise_line_endings(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    for (k, line) in source.split('\n').enumerate() {
        if k > 0 {
            out.push('\n');
        }
        out.push_str(line.trim_end_matches('\r'));
    }
    out
}

/// Kind of a lexical token. Whitespace and newlines are not tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Identifier, number or keyword (ASCII alphanumerics, `_`, `-` and any non-ASCII text).
    Word,
    /// Quoted string, template sequences included.
    Str,
    /// Heredoc from `<<` to the end of its closing delimiter. `head` is the length of the `<<ID` /
    /// `<<-ID` opener, `body` the offset of the first body line; `flush` is set for `<<-`.
    Heredoc {
        head: usize,
        body: usize,
        flush: bool,
    },
    /// `#` or `//` comment, up to the end of the line (trailing whitespace excluded).
    LineComment,
    /// `/* ... */` comment.
    BlockComment,
    /// `{`, `[` or `(`.
    Open(u8),
    /// `}`, `]` or `)`.
    Close,
    /// `,`.
    Comma,
    /// A single `=` (not part of `==`, `!=`, `<=`, `>=`, `=>`).
    Eq,
    /// Any other punctuation or operator.
    Other,
}

/// One token with the whitespace that precedes it on its line.
#[derive(Clone, Copy, Debug)]
struct Tok<'a> {
    kind: Kind,
    text: &'a str,
    /// Whitespace between the previous token of the line and this one (the indentation for the
    /// first token of a line, which is never used).
    ws: &'a str,
}

/// The tokens of a source and its logical lines, each a range of token indices (empty for a
/// blank line).
struct Lexed<'a> {
    toks: Vec<Tok<'a>>,
    lines: Vec<(usize, usize)>,
}

/// Splits `src` (with `\n` line endings) into tokens and logical lines. Returns `None` on an
/// unterminated string, block comment or heredoc, an unrecognised `<<`, or unbalanced brackets.
fn lex(src: &str) -> Option<Lexed<'_>> {
    let b = src.as_bytes();
    let mut toks: Vec<Tok<'_>> = Vec::with_capacity(src.len() / 4);
    let mut lines = Vec::with_capacity(src.len() / 24);
    let mut brackets: Vec<u8> = Vec::new();
    let mut line_first = 0;
    let mut ws_start = 0;
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let start = i;
        let kind = match c {
            b' ' | b'\t' | b'\r' => {
                i += 1;
                continue;
            }
            b'\n' => {
                lines.push((line_first, toks.len()));
                line_first = toks.len();
                i += 1;
                ws_start = i;
                continue;
            }
            b'#' => {
                i = line_end(b, i);
                Kind::LineComment
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                i = line_end(b, i);
                Kind::LineComment
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i = i + 2 + src.get(i + 2..)?.find("*/")? + 2;
                Kind::BlockComment
            }
            b'"' => {
                i = scan_string(b, i)?;
                Kind::Str
            }
            b'<' if b.get(i + 1) == Some(&b'<') => {
                let (kind, end) = scan_heredoc(src, i)?;
                i = end;
                kind
            }
            b'{' | b'[' | b'(' => {
                brackets.push(c);
                i += 1;
                Kind::Open(c)
            }
            b'}' | b']' | b')' => {
                let open = brackets.pop()?;
                if !matches!((open, c), (b'{', b'}') | (b'[', b']') | (b'(', b')')) {
                    return None;
                }
                i += 1;
                Kind::Close
            }
            b',' => {
                i += 1;
                Kind::Comma
            }
            b'=' | b'!' | b'<' | b'>' => {
                let next = b.get(i + 1).copied();
                if next == Some(b'=') || (c == b'=' && next == Some(b'>')) {
                    i += 2;
                    Kind::Other
                } else {
                    i += 1;
                    if c == b'=' { Kind::Eq } else { Kind::Other }
                }
            }
            _ if is_word_byte(c) => {
                while b.get(i).is_some_and(|&c| is_word_byte(c)) {
                    i += 1;
                }
                Kind::Word
            }
            _ => {
                i += 1;
                Kind::Other
            }
        };
        let mut text = src.get(start..i)?;
        if kind == Kind::LineComment {
            text = text.trim_end_matches([' ', '\t', '\r']);
        }
        toks.push(Tok {
            kind,
            text,
            ws: src.get(ws_start..start)?,
        });
        ws_start = i;
    }
    if !brackets.is_empty() {
        return None;
    }
    if line_first < toks.len() {
        lines.push((line_first, toks.len()));
    }
    Some(Lexed { toks, lines })
}

/// Whether `c` may be part of a [`Kind::Word`] or continue an identifier. Non-ASCII bytes are
/// word bytes, so tokens are only ever split at ASCII characters (and thus at UTF-8 character
/// boundaries).
fn is_word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || !c.is_ascii()
}

/// Index of the next `\n` at or after `i`, or the end of `b`.
fn line_end(b: &[u8], i: usize) -> usize {
    b.get(i..)
        .and_then(|rest| rest.iter().position(|&c| c == b'\n'))
        .map_or(b.len(), |k| i + k)
}

/// Returns the index just past the closing quote of the string opening at `start`, following
/// backslash escapes and `${...}` / `%{...}` template sequences (which may contain strings and
/// braces). Newlines are allowed, as hcl-edit allows them. `None` if the string is unterminated.
/// Uses an explicit stack, so deep nesting cannot overflow the call stack.
fn scan_string(b: &[u8], start: usize) -> Option<usize> {
    /// What the scanner is inside of.
    enum Ctx {
        /// The literal part of a quoted string.
        Str,
        /// A template sequence, with the number of unclosed `{` inside it.
        Template(usize),
    }
    let mut stack = vec![Ctx::Str];
    let mut i = start + 1;
    while let Some(top) = stack.last_mut() {
        let c = *b.get(i)?;
        match top {
            Ctx::Str => match c {
                b'\\' => i += 2,
                b'"' => {
                    stack.pop();
                    i += 1;
                }
                b'$' | b'%' => match b.get(i + 1) {
                    Some(&next) if next == c => i += 2,
                    Some(b'{') => {
                        stack.push(Ctx::Template(0));
                        i += 2;
                    }
                    _ => i += 1,
                },
                _ => i += 1,
            },
            Ctx::Template(depth) => {
                match c {
                    b'"' => stack.push(Ctx::Str),
                    b'{' => *depth += 1,
                    b'}' if *depth == 0 => {
                        stack.pop();
                    }
                    b'}' => *depth -= 1,
                    _ => {}
                }
                i += 1;
            }
        }
    }
    Some(i)
}

/// Scans a heredoc whose `<<` is at `start`: returns its kind and the index just past its closing
/// delimiter. `None` if the `<<` does not open a heredoc (`<<ID` or `<<-ID` followed by the end
/// of the line) or if no closing delimiter line follows.
fn scan_heredoc(src: &str, start: usize) -> Option<(Kind, usize)> {
    let b = src.as_bytes();
    let mut j = start + 2;
    let flush = b.get(j) == Some(&b'-');
    if flush {
        j += 1;
    }
    let id_start = j;
    if !b
        .get(j)
        .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_')
    {
        return None;
    }
    while b
        .get(j)
        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-')
    {
        j += 1;
    }
    let id = src.get(id_start..j)?;
    let head = j - start;
    while matches!(b.get(j), Some(b' ' | b'\t' | b'\r')) {
        j += 1;
    }
    if b.get(j) != Some(&b'\n') {
        return None;
    }
    let body = j + 1;
    let mut line_start = body;
    while line_start <= b.len() {
        let end = line_end(b, line_start);
        let line = src.get(line_start..end)?;
        if let Some(after) = delimiter_line_rest(line, id) {
            // hcl-edit ends an empty heredoc at the *next* delimiter line of the file, if there is
            // one (the parse of a body wins over an immediate delimiter): leave such files alone.
            if line_start == body && has_delimiter_line(src, end, id) {
                return None;
            }
            let kind = Kind::Heredoc {
                head,
                body: body - start,
                flush,
            };
            return Some((kind, end - after.len()));
        }
        line_start = end + 1;
    }
    None
}

/// If `line` closes a heredoc delimited by `id` (optional spaces and tabs, then `id` not followed
/// by an identifier character), the text after the delimiter.
fn delimiter_line_rest<'a>(line: &'a str, id: &str) -> Option<&'a str> {
    line.trim_start_matches([' ', '\t'])
        .strip_prefix(id)
        .filter(|after| !after.bytes().next().is_some_and(is_word_byte))
}

/// Whether a line after `from` (a line end) closes a heredoc delimited by `id`.
fn has_delimiter_line(src: &str, from: usize, id: &str) -> bool {
    src.get(from..).is_some_and(|rest| {
        rest.split('\n')
            .skip(1)
            .any(|line| delimiter_line_rest(line, id).is_some())
    })
}

/// What the renderer needs to know about a logical line.
#[derive(Clone, Copy, Debug, Default)]
struct LineInfo {
    /// Nesting level, in indentation steps.
    level: usize,
    /// No tokens.
    blank: bool,
    /// An attribute or object entry: a key (identifier or one-line string) followed by `=`.
    attr: bool,
    /// Width of the key of an attribute line, in characters.
    key_width: usize,
    /// Leaves brackets open for the following lines.
    opens: bool,
    /// Starts with a closing bracket.
    starts_closed: bool,
    /// Extends over several physical lines (heredoc, multi-line comment or string).
    multiline: bool,
}

/// Computes the [`LineInfo`] of every logical line.
///
/// Levels follow `terraform fmt`: a line that leaves brackets open adds one level (even when it
/// opens several, as in `x = [{`), and the closing brackets at the start of a line take levels
/// off before the line is indented, so `}]` sits at the level of the `x = [{` line.
fn line_infos(lx: &Lexed<'_>) -> Vec<LineInfo> {
    // Each entry is one indentation level: the number of brackets it still has open.
    let mut levels: Vec<usize> = Vec::new();
    // Closes one bracket of the innermost level; returns that level if it still has brackets open.
    let close_one = |levels: &mut Vec<usize>| {
        let top = levels.last_mut()?;
        *top -= 1;
        if *top == 0 {
            levels.pop();
            None
        } else {
            Some(levels.len() - 1)
        }
    };
    let mut infos = Vec::with_capacity(lx.lines.len());
    for &(s, e) in &lx.lines {
        let toks = &lx.toks[s..e];
        let Some(first) = toks.first() else {
            infos.push(LineInfo {
                level: levels.len(),
                blank: true,
                ..LineInfo::default()
            });
            continue;
        };
        // The closing brackets at the start of the line; `partial` is the level they took
        // brackets from without closing it (`}` of an `x = [{` line), if any.
        let mut k = 0;
        let mut partial = None;
        while toks.get(k).is_some_and(|t| t.kind == Kind::Close) {
            partial = close_one(&mut levels);
            k += 1;
        }
        let level = partial.unwrap_or(levels.len());
        let mut local_open = 0;
        for t in &toks[k..] {
            match t.kind {
                Kind::Open(_) => local_open += 1,
                Kind::Close if local_open > 0 => local_open -= 1,
                Kind::Close => {
                    close_one(&mut levels);
                }
                _ => {}
            }
        }
        if local_open > 0 {
            let innermost = levels.len().checked_sub(1);
            match levels.last_mut() {
                // `}, {` re-opens the level its `}` took from.
                Some(top) if partial.is_some() && partial == innermost => *top += local_open,
                _ => levels.push(local_open),
            }
        }
        let key =
            (first.kind == Kind::Word || first.kind == Kind::Str) && !first.text.contains('\n');
        let attr = key && toks.get(1).is_some_and(|t| t.kind == Kind::Eq);
        infos.push(LineInfo {
            level,
            blank: false,
            attr,
            key_width: if attr { first.text.chars().count() } else { 0 },
            opens: local_open > 0,
            starts_closed: k > 0,
            multiline: toks.iter().any(|t| t.text.contains('\n')),
        });
    }
    infos
}

/// Marks a `{` whose non-empty body closes on the same line.
const OPEN_ONE_LINE: u8 = 1;
/// Marks the `}` closing a [`OPEN_ONE_LINE`] brace.
const CLOSE_ONE_LINE: u8 = 2;

/// Renders the lexed source in the canonical layout.
fn render(lx: &Lexed<'_>, capacity: usize) -> String {
    let infos = line_infos(lx);

    // Which lines are emitted: blank lines only between two non-blank lines, at most one in a
    // row, never right after a line that opens brackets or right before one that closes them.
    let mut kept: Vec<usize> = Vec::with_capacity(infos.len());
    let mut next_non_blank = vec![None; infos.len()];
    let mut next = None;
    for (li, info) in infos.iter().enumerate().rev() {
        next_non_blank[li] = next;
        if !info.blank {
            next = Some(li);
        }
    }
    for (li, info) in infos.iter().enumerate() {
        if info.blank {
            let Some(&prev) = kept.last() else { continue };
            let prev = infos[prev];
            let Some(next) = next_non_blank[li] else {
                continue;
            };
            if prev.blank || prev.opens || infos[next].starts_closed {
                continue;
            }
        }
        kept.push(li);
    }

    // Alignment: the key column of every attribute line, per run.
    let mut key_column = vec![0; infos.len()];
    let mut run: Vec<usize> = Vec::new();
    let mut run_width = 0;
    let mut run_open = false;
    let flush = |run: &mut Vec<usize>, width: usize, key_column: &mut Vec<usize>| {
        for &li in run.iter() {
            key_column[li] = width;
        }
        run.clear();
    };
    for &li in &kept {
        let info = infos[li];
        let continues =
            run_open && info.attr && run.last().is_some_and(|&r| infos[r].level == info.level);
        if !continues {
            flush(&mut run, run_width, &mut key_column);
            run_width = 0;
        }
        if info.attr {
            run.push(li);
            run_width = run_width.max(info.key_width);
        }
        run_open = info.attr && !info.opens && !info.multiline;
    }
    flush(&mut run, run_width, &mut key_column);

    let mut out = String::with_capacity(capacity + capacity / 8);
    let mut flags: Vec<u8> = Vec::new();
    let mut opens: Vec<usize> = Vec::new();
    for &li in &kept {
        let info = infos[li];
        let (s, e) = lx.lines[li];
        let toks = &lx.toks[s..e];
        if toks.is_empty() {
            out.push('\n');
            continue;
        }

        // Non-empty braces that close on this line.
        flags.clear();
        flags.resize(toks.len(), 0);
        opens.clear();
        for (j, t) in toks.iter().enumerate() {
            match t.kind {
                Kind::Open(c) => opens.push(if c == b'{' { j } else { usize::MAX }),
                Kind::Close => {
                    if let Some(o) = opens.pop()
                        && o != usize::MAX
                        && j > o + 1
                    {
                        flags[o] |= OPEN_ONE_LINE;
                        flags[j] |= CLOSE_ONE_LINE;
                    }
                }
                _ => {}
            }
        }

        // A block header: an identifier, labels, then `{`. Its tokens are `toks[..=header_end]`.
        let mut header_end = 0;
        if !info.attr && toks[0].kind == Kind::Word {
            let mut h = 1;
            while toks.get(h).is_some_and(|t| {
                (t.kind == Kind::Word || t.kind == Kind::Str) && !t.text.contains('\n')
            }) {
                h += 1;
            }
            if toks.get(h).is_some_and(|t| t.kind == Kind::Open(b'{')) {
                header_end = h;
            }
        }

        push_spaces(&mut out, 2 * info.level);
        let last = toks.len() - 1;
        for (j, t) in toks.iter().enumerate() {
            if j > 0 {
                let p = toks[j - 1];
                match (p.kind, t.kind) {
                    (_, Kind::LineComment) => out.push(' '),
                    (_, Kind::BlockComment) if j == last => out.push(' '),
                    (Kind::BlockComment, _) | (_, Kind::BlockComment) => out.push_str(t.ws),
                    (_, Kind::Eq) if j == 1 && info.attr => {
                        push_spaces(&mut out, key_column[li].saturating_sub(info.key_width) + 1);
                    }
                    (Kind::Eq, _) | (_, Kind::Eq) => out.push(' '),
                    _ if j <= header_end => out.push(' '),
                    (_, Kind::Comma) => {}
                    _ if flags[j] & CLOSE_ONE_LINE != 0 || flags[j - 1] & OPEN_ONE_LINE != 0 => {
                        out.push(' ');
                    }
                    (Kind::Comma, Kind::Close) => out.push_str(t.ws),
                    (Kind::Comma, _) => out.push(' '),
                    _ => out.push_str(t.ws),
                }
            }
            push_token(&mut out, t, info.level);
        }
        out.push('\n');
    }
    out
}

/// Appends `n` spaces.
fn push_spaces(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// Appends one token: verbatim, except for the trailing whitespace of the inner lines of a block
/// comment (removed), the whitespace after a heredoc opener (removed) and the body of a `<<-`
/// heredoc (shifted, see [`flush_heredoc_shift`]). `level` is the level of the token's line.
fn push_token(out: &mut String, t: &Tok<'_>, level: usize) {
    match t.kind {
        Kind::BlockComment if t.text.contains('\n') => {
            for (k, part) in t.text.split('\n').enumerate() {
                if k > 0 {
                    out.push('\n');
                }
                out.push_str(part.trim_end_matches([' ', '\t', '\r']));
            }
        }
        Kind::Heredoc { head, body, flush } => {
            let (Some(opener), Some(rest)) = (t.text.get(..head), t.text.get(body..)) else {
                out.push_str(t.text);
                return;
            };
            out.push_str(opener);
            out.push('\n');
            let shifted = if flush {
                rest.rsplit_once('\n').and_then(|(lines, delim)| {
                    Some((lines, delim, flush_heredoc_shift(lines, delim, level)?))
                })
            } else {
                None
            };
            let Some((lines, delim, shift)) = shifted else {
                out.push_str(rest);
                return;
            };
            for line in lines.split('\n') {
                shift_line(out, line, shift);
                out.push('\n');
            }
            shift_line(out, delim, shift);
        }
        _ => out.push_str(t.text),
    }
}

/// Appends `line` shifted right (`shift > 0`) or left by `shift` spaces; empty lines stay empty,
/// and a left shift never removes more than the line's leading spaces.
fn shift_line(out: &mut String, line: &str, shift: isize) {
    if line.is_empty() {
        return;
    }
    if shift >= 0 {
        push_spaces(out, shift.unsigned_abs());
        out.push_str(line);
    } else {
        let lead = line.bytes().take_while(|&c| c == b' ').count();
        out.push_str(&line[lead.min(shift.unsigned_abs())..]);
    }
}

/// The shift (in spaces, negative to the left) that puts the least-indented line of a `<<-`
/// heredoc body one level deeper than `level`, or `None` when the body must be kept verbatim.
///
/// `<<-` strips the smallest indentation of the non-empty body lines from every line, so moving
/// all of them (and the closing delimiter, whose indentation is irrelevant) by the same amount
/// keeps the string the same as long as that smallest indentation stays positive. To stay clear
/// of any doubt the shift is only made when the indentation of every non-empty line is made of
/// spaces, no line is whitespace-only, and there is no template sequence (whose lines are not all
/// part of the string).
fn flush_heredoc_shift(lines: &str, delim: &str, level: usize) -> Option<isize> {
    if lines.contains("${") || lines.contains("%{") {
        return None;
    }
    let mut min = usize::MAX;
    for line in lines.split('\n').filter(|line| !line.is_empty()) {
        let spaces = line.bytes().take_while(|&c| c == b' ').count();
        let rest = &line[spaces..];
        if rest.is_empty() || rest.starts_with(char::is_whitespace) {
            return None;
        }
        min = min.min(spaces);
    }
    let delim_rest = delim.trim_start_matches(' ');
    if min == 0 || min == usize::MAX || delim_rest.starts_with(char::is_whitespace) {
        return None;
    }
    let target = 2 * (level + 1);
    let shift = isize::try_from(target).ok()? - isize::try_from(min).ok()?;
    (shift != 0).then_some(shift)
}

#[cfg(test)]
mod tests {
    use super::format_source;

    /// Formats `input`, checks that formatting the result again changes nothing, returns it.
    fn fmt(input: &str) -> String {
        let once = format_source(input);
        let twice = format_source(&once);
        assert_eq!(once, twice, "not idempotent for input:\n{input}");
        once
    }

    const MODEL: &str = r#"team "sales"   "crm" {
documentation { text = "CRM team" }
  # the customer store
    datastore "customer_db" {
      production_status="PRODUCTION"
      deprecated = false


      capture "cdc" {
        consistency = "MULTI_DATASET"
        trigger = { interval = "1m" }
        credential="crm_src"   # resolved at connect time
        source {
          postgres {
            host = "127.0.0.1"
            port = 5432
            database = "crm"
          }
        }
      }
      dataset "customers" {
        classifications = ["PC3" ,"IP"]
        table {
          columns = {
            id = { type = "integer", nullable = false, primary_key = true }
            email   = {type="varchar(200)", classifications = ["PC3:email"]}
          }
        }
      }
    }
  workspace "analytics" {
    transformer "t" {
      sql = <<-SQL
        SELECT id, upper(name) AS name
          FROM {{ input "g" "customer_db" "customers" }} -- "quoted" { brace # hash
      SQL
    }
  }
}
"#;

    const MODEL_FORMATTED: &str = r#"team "sales" "crm" {
  documentation { text = "CRM team" }
  # the customer store
  datastore "customer_db" {
    production_status = "PRODUCTION"
    deprecated        = false

    capture "cdc" {
      consistency = "MULTI_DATASET"
      trigger     = { interval = "1m" }
      credential  = "crm_src" # resolved at connect time
      source {
        postgres {
          host     = "127.0.0.1"
          port     = 5432
          database = "crm"
        }
      }
    }
    dataset "customers" {
      classifications = ["PC3", "IP"]
      table {
        columns = {
          id    = { type = "integer", nullable = false, primary_key = true }
          email = { type = "varchar(200)", classifications = ["PC3:email"] }
        }
      }
    }
  }
  workspace "analytics" {
    transformer "t" {
      sql = <<-SQL
        SELECT id, upper(name) AS name
          FROM {{ input "g" "customer_db" "customers" }} -- "quoted" { brace # hash
      SQL
    }
  }
}
"#;

    #[test]
    fn realistic_model() {
        assert_eq!(fmt(MODEL), MODEL_FORMATTED);
        assert_eq!(fmt(MODEL_FORMATTED), MODEL_FORMATTED);
    }

    #[test]
    fn indentation_of_nested_model() {
        let input = "a {\nb {\n        c {\nx = 1\n}\n    }\n   }\n";
        assert_eq!(
            fmt(input),
            "a {\n  b {\n    c {\n      x = 1\n    }\n  }\n}\n"
        );
    }

    #[test]
    fn indentation_of_multi_line_lists_and_calls() {
        let input = "a = [\n\"x\",\n  \"y\",\n      ]\nb = f(\n1,\n2)\n";
        assert_eq!(
            fmt(input),
            "a = [\n  \"x\",\n  \"y\",\n]\nb = f(\n  1,\n  2)\n"
        );
    }

    #[test]
    fn several_brackets_opened_on_one_line_indent_once() {
        let input = "x = [{\n      a = 1\n  }, {\n  b = 2\n}]\n";
        assert_eq!(fmt(input), "x = [{\n  a = 1\n}, {\n  b = 2\n}]\n");
        let input = "a = { b = [\n1,\n]\n}\n";
        assert_eq!(fmt(input), "a = { b = [\n  1,\n]\n}\n");
    }

    #[test]
    fn alignment_of_a_run() {
        let input = "b {\n  a = 1\n  long_name = 2\n  \"quoted key\"=3\n}\n";
        assert_eq!(
            fmt(input),
            "b {\n  a            = 1\n  long_name    = 2\n  \"quoted key\" = 3\n}\n"
        );
    }

    #[test]
    fn alignment_broken_by_blank_line_comment_and_block() {
        let input =
            "a = 1\nbbb = 2\n\ncc = 3\nd = 4\n# note\neeeee = 5\nf = 6\nblk {}\ngggg = 7\nh = 8\n";
        assert_eq!(
            fmt(input),
            "a   = 1\nbbb = 2\n\ncc = 3\nd  = 4\n# note\neeeee = 5\nf     = 6\nblk {}\ngggg = 7\nh    = 8\n"
        );
    }

    #[test]
    fn alignment_with_nested_block_and_multi_line_value() {
        let input = "s {\n  a = 1\n  inner {\n    x = 1\n    yyy = 2\n  }\n  long = 2\n  m = {\n    k = 1\n    kk = 2\n  }\n  n = 3\n  oo = 4\n}\n";
        assert_eq!(
            fmt(input),
            "s {\n  a = 1\n  inner {\n    x   = 1\n    yyy = 2\n  }\n  long = 2\n  m    = {\n    k  = 1\n    kk = 2\n  }\n  n  = 3\n  oo = 4\n}\n"
        );
    }

    #[test]
    fn object_entries_over_several_lines_align() {
        let input = "columns = {\n  id = { type = \"integer\" }\n  email   = {type=\"text\"}\n  \"x-y\" = {}\n}\n";
        assert_eq!(
            fmt(input),
            "columns = {\n  id    = { type = \"integer\" }\n  email = { type = \"text\" }\n  \"x-y\" = {}\n}\n"
        );
    }

    #[test]
    fn one_line_object_normalised() {
        assert_eq!(fmt("a = {b=1}\n"), "a = { b = 1 }\n");
        assert_eq!(
            fmt("a = {   b=1,c = [ 1 ,2 ],  d=  {e=\"f\"}   }\n"),
            "a = { b = 1, c = [ 1, 2 ], d = { e = \"f\" } }\n"
        );
        assert_eq!(
            fmt("a = {}\nb = []\nc = { }\n"),
            "a = {}\nb = []\nc = { }\n"
        );
        assert_eq!(
            fmt("a = x == y\nb = x != y\nc = x<=y\n"),
            "a = x == y\nb = x != y\nc = x<=y\n"
        );
    }

    #[test]
    fn block_header_spacing() {
        assert_eq!(fmt("team  \"z\"   \"t\"{\n}\n"), "team \"z\" \"t\" {\n}\n");
        assert_eq!(fmt("source{\n}\n"), "source {\n}\n");
        assert_eq!(
            fmt("documentation {text=\"x\"}\n"),
            "documentation { text = \"x\" }\n"
        );
        assert_eq!(fmt("location \"l\"  {}\n"), "location \"l\" {}\n");
    }

    #[test]
    fn lists_commas() {
        assert_eq!(
            fmt("a = [\"a\" ,\"b\",\"c\"]\n"),
            "a = [\"a\", \"b\", \"c\"]\n"
        );
        assert_eq!(
            fmt("a = [\n  \"a\" ,\n  \"b\",\n]\n"),
            "a = [\n  \"a\",\n  \"b\",\n]\n"
        );
    }

    #[test]
    fn comments_are_kept() {
        let input = "# head\n   // slashes\nb {\n        # inside\n  a = 1    # trailing\n  b = 2// also\n  c = 3 /* block */\n/* multi\n     line   \n  comment */\n  d = /* inline */ 4\n}\n";
        assert_eq!(
            fmt(input),
            "# head\n// slashes\nb {\n  # inside\n  a = 1 # trailing\n  b = 2 // also\n  c = 3 /* block */\n  /* multi\n     line\n  comment */\n  d = /* inline */ 4\n}\n"
        );
    }

    #[test]
    fn comment_markers_inside_strings_are_not_comments() {
        let input = "a = \"# not { a comment\"\nbb = \"// nor /* this\"\n";
        assert_eq!(
            fmt(input),
            "a  = \"# not { a comment\"\nbb = \"// nor /* this\"\n"
        );
    }

    #[test]
    fn strings_with_templates_are_untouched() {
        let input = "a   =   \"x ${ {a=1} } y ${\"in}ner\"}  \\\" %{ if true }z{%{ endif }\"\nb = \"$${x} {\"\n";
        assert_eq!(
            fmt(input),
            "a = \"x ${ {a=1} } y ${\"in}ner\"}  \\\" %{ if true }z{%{ endif }\"\nb = \"$${x} {\"\n"
        );
    }

    #[test]
    fn heredoc_body_untouched() {
        let input =
            "x {\n    sql = <<EOT\n  SELECT \"a\" {  # not a comment\n}  \n   EOT\n  y=1\n}\n";
        assert_eq!(
            fmt(input),
            "x {\n  sql = <<EOT\n  SELECT \"a\" {  # not a comment\n}  \n   EOT\n  y = 1\n}\n"
        );
    }

    #[test]
    fn indented_heredoc_shifted_as_a_whole() {
        let input =
            "x {\ny {\n  sql = <<-SQL\n    SELECT 1\n      FROM t { # \"\n\n    SQL\n}\n}\n";
        assert_eq!(
            fmt(input),
            "x {\n  y {\n    sql = <<-SQL\n      SELECT 1\n        FROM t { # \"\n\n      SQL\n  }\n}\n"
        );
        // Shifted left too, the delimiter never further than its own indentation.
        let input = "sql = <<-SQL\n          SELECT 1\n            FROM t\n    SQL\n";
        assert_eq!(fmt(input), "sql = <<-SQL\n  SELECT 1\n    FROM t\nSQL\n");
    }

    #[test]
    fn indented_heredoc_kept_when_shift_is_unsafe() {
        for input in [
            "x {\nsql = <<-SQL\n\tSELECT 1\nSQL\n}\n",
            "x {\nsql = <<-SQL\n    SELECT ${a}\nSQL\n}\n",
            "x {\nsql = <<-SQL\n    SELECT 1\n  \nSQL\n}\n",
            "x {\nsql = <<-SQL\nSELECT 1\nSQL\n}\n",
            "x {\nsql = <<-SQL\nSQL\n}\n",
        ] {
            let body = &input[input.find("SQL\n").unwrap()..input.rfind("SQL\n").unwrap()];
            let out = fmt(input);
            assert!(out.starts_with("x {\n  sql = <<-SQL\n"), "{out}");
            assert!(out.contains(body), "{out}");
        }
    }

    #[test]
    fn multi_line_strings_are_kept() {
        let input = "b {\na = \"x\n   y  \n\"\n  cc = \"${\n  f(1)}\"\n}\n";
        assert_eq!(
            fmt(input),
            "b {\n  a = \"x\n   y  \n\"\n  cc = \"${\n  f(1)}\"\n}\n"
        );
    }

    #[test]
    fn empty_heredocs() {
        assert_eq!(
            fmt("x {\na = <<EOT\nEOT\n}\n"),
            "x {\n  a = <<EOT\nEOT\n}\n"
        );
        // hcl-edit reads this `a` up to the last `EOT`: not touched.
        let input = "x {\na = <<EOT\n  EOT\nb = <<EOT\nx\nEOT\n}\n";
        assert_eq!(format_source(input), input);
    }

    #[test]
    fn heredoc_followed_by_code_on_the_delimiter_line() {
        let input = "a = [<<EOT\nx\nEOT\n,   \"b\" ,\"c\"]\nd = f(<<-E\n  y\n  E)\n";
        assert_eq!(
            fmt(input),
            "a = [<<EOT\nx\nEOT\n  , \"b\", \"c\"]\nd = f(<<-E\n  y\n  E)\n"
        );
    }

    #[test]
    fn crlf_is_normalised() {
        let input = "a {\r\n  b=1\r\n  cc = 2 # c\r\n}\r\n";
        assert_eq!(fmt(input), "a {\n  b  = 1\n  cc = 2 # c\n}\n");
    }

    #[test]
    fn blank_lines_collapse() {
        let input = "\n\n\na = 1\n\n\n\nb {\n\n\n  c = 2\n\n  d = 3\n\n\n}\n\n\n";
        assert_eq!(fmt(input), "a = 1\n\nb {\n  c = 2\n\n  d = 3\n}\n");
        assert_eq!(fmt("x = [\n\n  1,\n\n]\n"), "x = [\n  1,\n]\n");
    }

    #[test]
    fn trailing_whitespace_and_final_newline() {
        assert_eq!(fmt("a = 1   \t\nb {   \n}  "), "a = 1\nb {\n}\n");
        assert_eq!(fmt(""), "");
        assert_eq!(fmt("\n\n  \n"), "");
        assert_eq!(fmt("# only\n\n\n"), "# only\n");
    }

    #[test]
    fn non_ascii_is_kept() {
        let input = "b {\n  \"clé\" = \"é ${\"ü\"}\"\n  ab = \"日本\" # ça\n}\n";
        assert_eq!(
            fmt(input),
            "b {\n  \"clé\" = \"é ${\"ü\"}\"\n  ab    = \"日本\" # ça\n}\n"
        );
    }

    #[test]
    fn malformed_input_returned_unchanged() {
        for input in [
            "a = \"unterminated\n",
            "a = \"x ${ \"y }\"\n",
            "a = <<EOT\nno end\n",
            "a = <<-\nx\n",
            "a = <<EOT trailing\nEOT\n",
            "a = { b = 1\n",
            "a = [1, 2}\n",
            "}\n",
            "a = 1 /* unterminated\n",
            "x {\r\n  a = \"open\r\n}\r\n",
            "\"",
            "<<",
            "${",
        ] {
            assert_eq!(format_source(input), input);
        }
    }

    #[test]
    fn never_panics_on_arbitrary_bytes_and_prefixes() {
        let mut inputs: Vec<String> = Vec::new();
        for fixture in fixtures() {
            for (k, _) in fixture.char_indices() {
                inputs.push(fixture[..k].to_owned());
                inputs.push(fixture[k..].to_owned());
            }
        }
        // A deterministic scramble of tricky characters.
        let alphabet: Vec<char> = "{}[]()\"\\$%#/*<-=,!> \n\r\tEOTaé日".chars().collect();
        let mut state = 0x2545_f491_u32;
        for len in 0..2000 {
            let mut s = String::new();
            for _ in 0..len % 60 {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                s.push(alphabet[state as usize % alphabet.len()]);
            }
            inputs.push(s);
        }
        for input in inputs {
            let once = format_source(&input);
            assert_eq!(format_source(&once), once, "not idempotent for {input:?}");
        }
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        let depth = 100_000;
        let input = format!("a = {}1{}\n", "[".repeat(depth), "]".repeat(depth));
        assert_eq!(fmt(&input), input);
        let input = format!("a = \"{}\"\n", "${\"".repeat(depth) + &"\"}".repeat(depth));
        assert_eq!(fmt(&input), input);
    }

    fn fixtures() -> Vec<String> {
        let mut all = vec![
            MODEL.to_owned(),
            MODEL_FORMATTED.to_owned(),
            MODEL.replace('\n', "\r\n"),
            include_str_design_example().to_owned(),
        ];
        all.push("a = [\n  {\n    x = 1\n  },\n  { y = 2 },\n]\nb = (\n  1 + 2\n)\n".to_owned());
        all
    }

    /// The shape of the model-language design example, as users write it.
    fn include_str_design_example() -> &'static str {
        r#"ecosystem "acme" {
  owning_repo = { repo = "acme/eco", branch = "main" }
  documentation { text = "..." }
  vendor "onprem" {
    cloud = "PRIVATE"
    location "dc1" {
      location "rack1" {}
    }
  }
  zone_declaration "z" { owning_repo = { repo = "acme/z", branch = "main" } }
}

platform "p" {
  locations = ["onprem:dc1/rack1"]
  merge_db {
    host = "127.0.0.1"   # local
    port = 5432
    database = "datasurface"
    credential = "merge_rw"
  }
  credentials = { kind = "env" }
  state = { backend = "local", path = ".ds/state.json" }
  data_platform "live" {
    milestoning = "LIVE_ONLY"
    staging_batches_to_keep = 5
  }
}

zone "z" {
  classification_policy "c" { allowed = ["PUB", "IP"] }
  location_policy       "l" { allowed = ["onprem:dc1"] }
}
"#
    }

    #[test]
    fn idempotent_on_all_fixtures() {
        for fixture in fixtures() {
            let once = fmt(&fixture);
            assert!(once.ends_with('\n'));
            assert!(!once.contains('\r'));
            assert!(!once.contains("\n\n\n"));
            assert!(once.lines().all(|l| l == l.trim_end()));
        }
    }
}
