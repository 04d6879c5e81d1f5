//! Word expansion with BuildKit shell-lexer semantics.
//!
//! This is the third layer of the frontend. It implements the subset of POSIX
//! shell word processing that the Dockerfile builder applies to instruction
//! arguments (BuildKit's `shell/lex.go`): quote removal, the escape token,
//! `$NAME`, `${NAME}` and the parameter-expansion operators listed on
//! [`expand_word`]. There is no command substitution, arithmetic or globbing
//! of file names.
//!
//! Variables are looked up through a caller-supplied closure, so the engine
//! owns scoping (ARG/ENV per stage). The closure is called once per variable
//! reference, which also lets the caller record which variables were used.

use thiserror::Error;

/// Maximum nesting of `${...}` inside `${...}` before expansion gives up.
///
/// Deeply nested substitutions are never legitimate; the limit keeps the
/// recursive lexer from exhausting the stack on hostile input.
pub const MAX_NESTING: usize = 64;

/// Why a word could not be expanded.
///
/// The messages follow BuildKit's wording where it has one.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ExpandError {
    /// `${` without a closing `}`.
    #[error("syntax error: missing '}}'")]
    MissingBrace,
    /// `${}`, `${:x}`, `${{x}` and similar.
    #[error("syntax error: bad substitution")]
    BadSubstitution,
    /// `${V/pattern` without the `/` that starts the replacement.
    #[error("syntax error: missing '/' in ${{}}")]
    MissingSlash,
    /// An operator this lexer does not support, such as `${V:=w}` or `${V:#p}`.
    #[error("unsupported modifier ({0}) in substitution")]
    UnsupportedModifier(String),
    /// `${V?msg}` / `${V:?msg}` with `V` unset (or empty, for `:?`).
    #[error("{name}: {message}")]
    Required {
        /// The variable that was required.
        name: String,
        /// The user's message, or a default one.
        message: String,
    },
    /// A `'` without its closing `'`.
    #[error("unexpected end of statement while looking for matching single-quote")]
    UnterminatedSingleQuote,
    /// A `"` without its closing `"`.
    #[error("unexpected end of statement while looking for matching double-quote")]
    UnterminatedDoubleQuote,
    /// Substitutions nested deeper than [`MAX_NESTING`].
    #[error("substitutions nested more than {0} levels deep")]
    TooDeep(usize),
}

/// Expands one word and removes quotes, like BuildKit's `ProcessWord`.
///
/// Whitespace is preserved: the result is a single string even if it
/// contains spaces. Supported forms: `$V`, `${V}`, `${V:-w}`, `${V-w}`,
/// `${V:+w}`, `${V+w}`, `${V:?msg}`, `${V?msg}`, `${V#p}`, `${V##p}`,
/// `${V%p}`, `${V%%p}`, `${V/p/r}` and `${V//p/r}` where patterns may use
/// `*` and `?` (escape them with the escape token to match literally).
/// Single quotes are literal; inside double quotes only `$` is special and
/// the escape token escapes `"`, `$` and itself. Outside quotes the escape
/// token makes the next character literal; a trailing escape is dropped.
///
/// Unset variables expand to the empty string.
///
/// # Errors
/// Unterminated quotes or braces, unsupported operators, and `?` operators
/// whose variable is unset.
pub fn expand_word(
    word: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    escape: char,
) -> Result<String, ExpandError> {
    let mut lexer = Lexer::new(word, lookup, escape);
    lexer.process_stop_on(None, false).map(|(s, _)| s)
}

/// Expands a word and splits the result into fields, like BuildKit's
/// `ProcessWords`.
///
/// Unquoted whitespace, including whitespace produced by an unquoted
/// variable expansion, separates fields; quoted text never does. Empty
/// fields are dropped (so `""` alone yields no field, as in BuildKit).
///
/// # Errors
/// The same as [`expand_word`].
pub fn expand_words(
    word: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    escape: char,
) -> Result<Vec<String>, ExpandError> {
    let mut lexer = Lexer::new(word, lookup, escape);
    lexer.process_stop_on(None, false).map(|(_, w)| w)
}

/// Expands the body of an unquoted heredoc (`COPY <<EOF`).
///
/// Only `$` substitutions are performed. Quotes are ordinary characters
/// (as in a shell heredoc), and the escape token is removed only before
/// `$` or another escape token; everywhere else it is kept.
///
/// # Errors
/// Malformed `${...}` substitutions and failed `?` operators.
pub fn expand_heredoc(
    content: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    escape: char,
) -> Result<String, ExpandError> {
    let mut lexer = Lexer::new(content, lookup, escape);
    let mut out = String::new();
    while let Some(ch) = lexer.peek() {
        if ch == '$' {
            out.push_str(&lexer.dollar()?);
            continue;
        }
        lexer.pos += 1;
        if ch == escape
            && let Some(next) = lexer.peek()
            && (next == '$' || next == escape)
        {
            lexer.pos += 1;
            out.push(next);
            continue;
        }
        out.push(ch);
    }
    Ok(out)
}

/// Field accumulator mirroring BuildKit's `wordsStruct`.
#[derive(Default)]
struct Fields {
    word: String,
    words: Vec<String>,
    in_word: bool,
}

impl Fields {
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() {
            if self.in_word && !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(ch);
        }
    }

    fn add_raw_char(&mut self, ch: char) {
        self.word.push(ch);
        self.in_word = true;
    }

    fn add_string(&mut self, s: &str) {
        for ch in s.chars() {
            self.add_char(ch);
        }
    }

    fn add_raw_string(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(std::mem::take(&mut self.word));
        }
        self.words
    }
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    lookup: &'a dyn Fn(&str) -> Option<String>,
    depth: usize,
}

impl<'a> Lexer<'a> {
    fn new(src: &str, lookup: &'a dyn Fn(&str) -> Option<String>, escape: char) -> Self {
        Lexer {
            chars: src.chars().collect(),
            pos: 0,
            escape,
            lookup,
            depth: 0,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let ch = self.peek();
        if ch.is_some() {
            self.pos += 1;
        }
        ch
    }

    /// Processes until `stop` (consumed) or the end of input. With
    /// `raw_escapes` the escape token is kept in the output (used for
    /// patterns, where it protects glob characters).
    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), ExpandError> {
        let mut result = String::new();
        let mut fields = Fields::default();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.pos += 1;
                return Ok((result, fields.finish()));
            }
            match ch {
                '\'' => {
                    let s = self.single_quote()?;
                    result.push_str(&s);
                    fields.add_raw_string(&s);
                }
                '"' => {
                    let s = self.double_quote()?;
                    result.push_str(&s);
                    fields.add_raw_string(&s);
                }
                '$' => {
                    let s = self.dollar()?;
                    result.push_str(&s);
                    fields.add_string(&s);
                }
                _ => {
                    self.pos += 1;
                    let mut ch = ch;
                    if ch == self.escape {
                        if raw_escapes {
                            fields.add_raw_char(ch);
                            result.push(ch);
                        }
                        match self.next() {
                            None => break,
                            Some(next) => {
                                ch = next;
                                fields.add_raw_char(ch);
                            }
                        }
                    } else {
                        fields.add_char(ch);
                    }
                    result.push(ch);
                }
            }
        }
        if stop.is_some() {
            // Callers map this to the specific "missing" error.
            return Err(ExpandError::MissingBrace);
        }
        Ok((result, fields.finish()))
    }

    fn single_quote(&mut self) -> Result<String, ExpandError> {
        self.pos += 1; // opening quote
        let mut result = String::new();
        loop {
            match self.next() {
                None => return Err(ExpandError::UnterminatedSingleQuote),
                Some('\'') => return Ok(result),
                Some(ch) => result.push(ch),
            }
        }
    }

    fn double_quote(&mut self) -> Result<String, ExpandError> {
        self.pos += 1; // opening quote
        let mut result = String::new();
        loop {
            match self.peek() {
                None => return Err(ExpandError::UnterminatedDoubleQuote),
                Some('"') => {
                    self.pos += 1;
                    return Ok(result);
                }
                Some('$') => result.push_str(&self.dollar()?),
                Some(mut ch) => {
                    self.pos += 1;
                    if ch == self.escape {
                        match self.peek() {
                            // A trailing escape is ignored; the loop then
                            // reports the missing quote.
                            None => continue,
                            Some(next) if next == '"' || next == '$' || next == self.escape => {
                                self.pos += 1;
                                ch = next;
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(ch);
                }
            }
        }
    }

    fn lookup(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
    }

    fn dollar(&mut self) -> Result<String, ExpandError> {
        if self.depth >= MAX_NESTING {
            return Err(ExpandError::TooDeep(MAX_NESTING));
        }
        self.depth += 1;
        let result = self.dollar_inner();
        self.depth -= 1;
        result
    }

    fn dollar_inner(&mut self) -> Result<String, ExpandError> {
        self.pos += 1; // '$'
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".to_string());
            }
            return Ok(self.lookup(&name).unwrap_or_default());
        }
        self.pos += 1; // '{'
        match self.peek() {
            None => return Err(ExpandError::MissingBrace),
            Some('{' | '}' | ':') => return Err(ExpandError::BadSubstitution),
            Some(_) => {}
        }
        let name = self.name();
        let Some(ch) = self.next() else {
            return Err(ExpandError::MissingBrace);
        };
        match ch {
            '}' => Ok(self.lookup(&name).unwrap_or_default()),
            ':' | '+' | '-' | '?' | '#' | '%' => {
                let mut modifier = ch.to_string();
                let mut op = ch;
                let null_is_unset = ch == ':';
                if null_is_unset {
                    op = self.next().ok_or(ExpandError::MissingBrace)?;
                    modifier.push(op);
                }
                let raw_escapes = op == '#' || op == '%';
                if null_is_unset && raw_escapes {
                    return Err(ExpandError::UnsupportedModifier(modifier));
                }
                let word = self.until('}', raw_escapes, ExpandError::MissingBrace)?;
                let value = self.lookup(&name);
                let unset = match &value {
                    None => true,
                    Some(v) => null_is_unset && v.is_empty(),
                };
                match op {
                    '-' => Ok(if unset {
                        word
                    } else {
                        value.unwrap_or_default()
                    }),
                    '+' => Ok(if unset { String::new() } else { word }),
                    '?' => {
                        if unset {
                            let message = if !word.is_empty() {
                                word
                            } else if value.is_none() {
                                "is not allowed to be unset".to_string()
                            } else {
                                "is not allowed to be empty".to_string()
                            };
                            return Err(ExpandError::Required { name, message });
                        }
                        Ok(value.unwrap_or_default())
                    }
                    '#' | '%' => {
                        let (greedy, pattern) = match word.strip_prefix(op) {
                            Some(rest) => (true, rest),
                            None => (false, word.as_str()),
                        };
                        let pattern = Pattern::compile(pattern, self.escape);
                        let value: Vec<char> = value.unwrap_or_default().chars().collect();
                        Ok(if op == '#' {
                            pattern.trim_prefix(&value, greedy)
                        } else {
                            pattern.trim_suffix(&value, greedy)
                        })
                    }
                    _ => Err(ExpandError::UnsupportedModifier(modifier)),
                }
            }
            '/' => {
                let all = self.peek() == Some('/');
                if all {
                    self.pos += 1;
                }
                let pattern = self.until('/', true, ExpandError::MissingSlash)?;
                let replacement = self.until('}', true, ExpandError::MissingBrace)?;
                let replacement = unescape(&replacement, self.escape);
                let value: Vec<char> = self.lookup(&name).unwrap_or_default().chars().collect();
                let pattern = Pattern::compile(&pattern, self.escape);
                Ok(pattern.replace(&value, &replacement, all))
            }
            other => Err(ExpandError::UnsupportedModifier(other.to_string())),
        }
    }

    /// Processes up to `stop`; at end of input reports `missing`.
    fn until(
        &mut self,
        stop: char,
        raw_escapes: bool,
        missing: ExpandError,
    ) -> Result<String, ExpandError> {
        match self.process_stop_on(Some(stop), raw_escapes) {
            Ok((word, _)) => Ok(word),
            Err(_) if self.peek().is_none() => Err(missing),
            Err(e) => Err(e),
        }
    }

    /// Reads a variable name: a run of letters, digits and `_`, a run of
    /// digits (positional parameter) or one special parameter character.
    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_ascii_digit() {
                while let Some(d) = self.peek()
                    && d.is_ascii_digit()
                {
                    name.push(d);
                    self.pos += 1;
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.pos += 1;
                return ch.to_string();
            }
            if !(ch.is_alphanumeric() || ch == '_') {
                break;
            }
            name.push(ch);
            self.pos += 1;
        }
        name
    }
}

/// Removes escape tokens, keeping the characters they protect.
fn unescape(s: &str, escape: char) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(ch) = chars.next() {
        if ch == escape {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(ch);
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Lit(char),
    One,
    Any,
}

/// A shell glob pattern (`*`, `?`, escaped literals) matched against
/// whole strings.
struct Pattern(Vec<Tok>);

impl Pattern {
    fn compile(pattern: &str, escape: char) -> Self {
        let mut toks = Vec::new();
        let mut chars = pattern.chars();
        while let Some(ch) = chars.next() {
            toks.push(match ch {
                '*' => Tok::Any,
                '?' => Tok::One,
                c if c == escape => Tok::Lit(chars.next().unwrap_or(c)),
                c => Tok::Lit(c),
            });
        }
        Pattern(toks)
    }

    /// Whole-string glob match (iterative, with single-star backtracking).
    fn matches(&self, s: &[char]) -> bool {
        let p = &self.0;
        let (mut pi, mut si) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while si < s.len() {
            match p.get(pi) {
                Some(Tok::Lit(c)) if *c == s[si] => {
                    pi += 1;
                    si += 1;
                }
                Some(Tok::One) => {
                    pi += 1;
                    si += 1;
                }
                Some(Tok::Any) => {
                    star = Some((pi, si));
                    pi += 1;
                }
                _ => match star {
                    Some((sp, ss)) => {
                        pi = sp + 1;
                        si = ss + 1;
                        star = Some((sp, ss + 1));
                    }
                    None => return false,
                },
            }
        }
        p[pi.min(p.len())..].iter().all(|t| *t == Tok::Any)
    }

    fn trim_prefix(&self, value: &[char], longest: bool) -> String {
        let n = value.len();
        let found = if longest {
            (0..=n).rev().find(|&end| self.matches(&value[..end]))
        } else {
            (0..=n).find(|&end| self.matches(&value[..end]))
        };
        value[found.unwrap_or(0)..].iter().collect()
    }

    fn trim_suffix(&self, value: &[char], longest: bool) -> String {
        let n = value.len();
        let found = if longest {
            (0..=n).find(|&start| self.matches(&value[start..]))
        } else {
            (0..=n).rev().find(|&start| self.matches(&value[start..]))
        };
        value[..found.unwrap_or(n)].iter().collect()
    }

    /// Replaces the first (or every) leftmost-longest match.
    fn replace(&self, value: &[char], replacement: &str, all: bool) -> String {
        if self.0.is_empty() {
            return value.iter().collect();
        }
        let n = value.len();
        let mut out = String::new();
        let mut i = 0;
        let mut last_end = None;
        while i <= n {
            let found = (i..=n).rev().find(|&end| self.matches(&value[i..end]));
            match found {
                Some(end) if !(end == i && last_end == Some(i)) => {
                    out.push_str(replacement);
                    if !all {
                        out.extend(&value[end..]);
                        return out;
                    }
                    last_end = Some(end);
                    if end == i {
                        if i < n {
                            out.push(value[i]);
                        }
                        i += 1;
                    } else {
                        i = end;
                    }
                }
                _ => {
                    if i < n {
                        out.push(value[i]);
                    }
                    i += 1;
                }
            }
        }
        out
    }
}
