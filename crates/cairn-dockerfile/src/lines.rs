//! Layer 1: parser directives, logical lines and heredoc capture.
//!
//! Mirrors BuildKit's line-oriented `parser.go`: directives are only
//! recognised before the first line that is not one; a logical line is a
//! physical line plus any continuation lines (escape token, optionally
//! followed by spaces or tabs, at the end of a line); comment lines and
//! blank lines inside a continuation are dropped; heredoc bodies are taken
//! from the physical lines that follow the logical line.

use crate::error::{ErrorKind, Warning};

/// Parser directives found at the top of the file.
#[derive(Debug, Default)]
pub(crate) struct Directives {
    pub escape: Option<char>,
    pub syntax: Option<String>,
    pub check: Option<String>,
}

/// Splits text into physical lines: BOM stripped, `\n` or `\r\n` endings.
pub(crate) fn physical_lines(text: &str) -> Vec<&str> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let text = text.strip_suffix('\n').unwrap_or(text);
    if text.is_empty() {
        return Vec::new();
    }
    text.split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect()
}

/// Parses `#name=value` into (lower-cased name, value).
fn directive(line: &str) -> Option<(String, &str)> {
    let rest = line.trim_start().strip_prefix('#')?.trim_start();
    let name_len = rest
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map_or(rest.len(), |(i, _)| i);
    if name_len == 0 {
        return None;
    }
    let (name, after) = rest.split_at(name_len);
    let value = after.trim_start().strip_prefix('=')?.trim();
    if value.is_empty() {
        return None;
    }
    Some((name.to_ascii_lowercase(), value))
}

/// Scans the directive block. Errors carry the 1-based line.
pub(crate) fn scan_directives(lines: &[&str]) -> Result<Directives, (usize, ErrorKind)> {
    let mut d = Directives::default();
    for (i, line) in lines.iter().enumerate() {
        if i == 0 && line.starts_with("#!") {
            continue;
        }
        let Some((name, value)) = directive(line) else {
            break;
        };
        let slot = match name.as_str() {
            "escape" => {
                if d.escape.is_some() {
                    return Err((i + 1, ErrorKind::DuplicateDirective(name)));
                }
                d.escape = Some(match value {
                    "\\" => '\\',
                    "`" => '`',
                    other => return Err((i + 1, ErrorKind::InvalidEscape(other.to_string()))),
                });
                continue;
            }
            "syntax" => &mut d.syntax,
            "check" => &mut d.check,
            _ => break,
        };
        if slot.is_some() {
            return Err((i + 1, ErrorKind::DuplicateDirective(name)));
        }
        *slot = Some(value.to_string());
    }
    Ok(d)
}

/// A logical line: continuation lines joined.
#[derive(Debug)]
pub(crate) struct Logical {
    pub text: String,
    pub line: usize,
    pub end_line: usize,
}

/// Cursor over physical lines.
#[derive(Debug)]
pub(crate) struct LineReader<'a> {
    lines: Vec<&'a str>,
    pos: usize,
    escape: char,
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

impl<'a> LineReader<'a> {
    pub fn new(lines: Vec<&'a str>, escape: char) -> Self {
        LineReader {
            lines,
            pos: 0,
            escape,
        }
    }

    /// Number of physical lines consumed so far (= 1-based last line).
    pub fn consumed(&self) -> usize {
        self.pos
    }

    /// Strips a trailing continuation (escape token plus optional blanks).
    /// Returns the line without it and whether the line continues. As in
    /// BuildKit (since moby/buildkit#1559), an escape token preceded by
    /// another one is an escaped literal, not a continuation (`c:\\`);
    /// like BuildKit's regular expression, this does not count further
    /// back (`a\\\` does not continue either).
    fn continuation<'l>(&self, line: &'l str) -> (&'l str, bool) {
        let trimmed = line.trim_end_matches([' ', '\t']);
        match trimmed.strip_suffix(self.escape) {
            Some(rest) if !rest.ends_with(self.escape) => (rest, true),
            _ => (line, false),
        }
    }

    pub fn next_logical(&mut self, warnings: &mut Vec<Warning>) -> Option<Logical> {
        while self.pos < self.lines.len() {
            let raw = self.lines[self.pos];
            self.pos += 1;
            let start = self.pos;
            if is_comment(raw) {
                continue;
            }
            let (first, mut cont) = self.continuation(raw.trim_start());
            if !cont && first.trim().is_empty() {
                continue;
            }
            let mut text = first.to_string();
            while cont && self.pos < self.lines.len() {
                let raw = self.lines[self.pos];
                self.pos += 1;
                if is_comment(raw) {
                    continue;
                }
                if raw.trim().is_empty() {
                    warnings.push(Warning {
                        line: self.pos,
                        message: "empty continuation line (deprecated; a future release may treat it as the end of the instruction)".to_string(),
                    });
                    continue;
                }
                let (part, c) = self.continuation(raw);
                text.push_str(part);
                cont = c;
            }
            if text.trim().is_empty() {
                continue;
            }
            return Some(Logical {
                text,
                line: start,
                end_line: self.pos,
            });
        }
        None
    }

    /// Reads a heredoc body up to its terminator line. `None` when the
    /// file ends first.
    pub fn heredoc_body(&mut self, name: &str, strip_tabs: bool) -> Option<String> {
        let mut content = String::new();
        while self.pos < self.lines.len() {
            let line = self.lines[self.pos];
            self.pos += 1;
            let candidate = if strip_tabs {
                line.trim_start_matches('\t')
            } else {
                line
            };
            if candidate == name {
                return Some(content);
            }
            content.push_str(line);
            content.push('\n');
        }
        None
    }
}

/// Whitespace as BuildKit's `[\t\v\f\r ]` class.
pub(crate) fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\u{b}' | '\u{c}' | '\r')
}

/// Splits `KEYWORD rest`.
pub(crate) fn split_keyword(line: &str) -> (&str, &str) {
    let line = line.trim();
    match line.find(is_blank) {
        Some(i) => (&line[..i], line[i..].trim()),
        None => (line, ""),
    }
}

/// Splits on blanks without any quote handling.
pub(crate) fn split_blank(s: &str) -> Vec<String> {
    s.split(is_blank)
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// Extracts leading `--flag[=value]` words (BuildKit `extractBuilderFlags`).
/// Quotes inside a flag word are removed and `\` escapes one character; a
/// bare `--` ends the flags. Returns the flags (with their `--`) and the
/// trimmed remainder.
pub(crate) fn extract_flags(line: &str) -> (Vec<String>, &str) {
    let mut flags = Vec::new();
    let mut rest = line;
    loop {
        let trimmed = rest.trim_start();
        if !trimmed.starts_with("--") {
            return (flags, trimmed.trim());
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        let mut blank_ok = false;
        let mut chars = trimmed.char_indices();
        let mut end = trimmed.len();
        while let Some((i, ch)) = chars.next() {
            match quote {
                None if ch.is_whitespace() => {
                    end = i;
                    break;
                }
                None if ch == '\'' || ch == '"' => {
                    quote = Some(ch);
                    blank_ok = true;
                }
                Some(q) if ch == q => quote = None,
                _ if ch == '\\' => {
                    if let Some((_, next)) = chars.next() {
                        word.push(next);
                    }
                }
                _ => word.push(ch),
            }
        }
        rest = &trimmed[end..];
        if word == "--" && !blank_ok {
            return (flags, rest.trim());
        }
        if blank_ok || !word.is_empty() {
            flags.push(word);
        }
    }
}

/// A heredoc reference found on an instruction line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeredocRef {
    pub name: String,
    pub expand: bool,
    pub strip_tabs: bool,
    /// The file descriptor written before `<<` (0 when none; saturates).
    pub fd: u64,
}

/// Splits a line into words for heredoc detection: unquoted whitespace
/// separates words; quotes and `\` escapes are kept raw. An unterminated
/// quote yields no words (as BuildKit, which ignores the lexing error).
fn raw_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(ch) = chars.next() {
        match quote {
            None if ch.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            None if ch == '\'' || ch == '"' => {
                quote = Some(ch);
                word.push(ch);
            }
            Some(q) if ch == q => {
                quote = None;
                word.push(ch);
            }
            Some('\'') => word.push(ch),
            _ if ch == '\\' => {
                word.push(ch);
                if let Some(next) = chars.next() {
                    word.push(next);
                }
            }
            _ => word.push(ch),
        }
    }
    if quote.is_some() {
        return Vec::new();
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// Removes quotes and escapes from a heredoc delimiter. Returns the name
/// and whether any quoting was present; `None` if it is not one word.
fn unquote_delimiter(s: &str) -> Option<(String, bool)> {
    let mut out = String::new();
    let mut quoted = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(ch) = chars.next() {
        match quote {
            None if ch.is_whitespace() => return None,
            None if ch == '\'' || ch == '"' => {
                quote = Some(ch);
                quoted = true;
            }
            Some(q) if ch == q => quote = None,
            Some('\'') => out.push(ch),
            Some(_) if ch == '\\' => match chars.next() {
                Some(n @ ('"' | '$' | '\\')) => out.push(n),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => return None,
            },
            None if ch == '\\' => out.push(chars.next()?),
            _ => out.push(ch),
        }
    }
    if quote.is_some() || out.is_empty() {
        return None;
    }
    Some((out, quoted))
}

/// Parses one word as a heredoc reference: `[digits]<<[-]DELIM`.
pub(crate) fn heredoc_ref(word: &str) -> Option<HeredocRef> {
    let digits = word.len() - word.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let fd = match &word[..digits] {
        "" => 0,
        d => d.parse().unwrap_or(u64::MAX),
    };
    let rest = word[digits..].strip_prefix("<<")?;
    let (strip_tabs, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    if rest.is_empty() || rest.contains('<') {
        return None;
    }
    let (name, quoted) = unquote_delimiter(rest)?;
    Some(HeredocRef {
        name,
        expand: !quoted,
        strip_tabs,
        fd,
    })
}

/// All heredoc references on a line, in order.
pub(crate) fn heredoc_refs(line: &str) -> Vec<HeredocRef> {
    if !line.contains("<<") {
        return Vec::new();
    }
    raw_words(line)
        .iter()
        .filter_map(|w| heredoc_ref(w))
        .collect()
}
