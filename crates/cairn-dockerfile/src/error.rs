//! The crate's error type: every parse failure names file, line and cause.

use thiserror::Error;

use crate::expand::ExpandError;

/// A Dockerfile that could not be parsed (or expanded).
///
/// Displays as `FILE:LINE:COLUMN: CAUSE` followed, when the offending line
/// is known, by a caret snippet:
///
/// ```text
/// Dockerfile:6:1: unknown instruction "RUNN" (did you mean RUN?)
///   |
/// 6 | RUNN echo typo
///   | ^^^^
/// ```
///
/// Errors built with [`Error::new`] (no column) display as `FILE:LINE: CAUSE`;
/// errors that concern the whole file (no `FROM`) have `line == 0` and
/// display as `FILE: CAUSE`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{}: {kind}{}", location(.file, *.line, *.column), render_snippet(*.line, *.column, *.width, .source_line.as_deref()))]
pub struct Error {
    /// The file name given to [`crate::parse`].
    pub file: String,
    /// 1-based line of the offending text; 0 for whole-file errors.
    pub line: usize,
    /// What went wrong.
    #[source]
    pub kind: ErrorKind,
    /// 1-based column (in characters) of the offending text on `line`;
    /// 0 when unknown.
    pub column: usize,
    /// Width of the offending text in characters (the caret underline);
    /// 0 when unknown.
    pub width: usize,
    /// The offending physical line as written, for the caret snippet;
    /// `None` when unknown. (Boxed to keep `Error` small.)
    pub source_line: Option<Box<str>>,
}

impl Error {
    /// Builds an error without a column or snippet; the engine uses this to
    /// report expansion failures with the location of the instruction being
    /// evaluated. [`Error::locate_in`] adds the column and snippet.
    pub fn new(file: impl Into<String>, line: usize, kind: ErrorKind) -> Self {
        Error {
            file: file.into(),
            line,
            kind,
            column: 0,
            width: 0,
            source_line: None,
        }
    }

    /// Fills in the column, width and snippet from the Dockerfile's text:
    /// the offending text is searched for on `self.line` and the physical
    /// lines after it up to `end_line` (the instruction's last line), and
    /// `line` moves to where it is found. Without a better clue the caret
    /// points at the instruction keyword. Errors with `line == 0`, or a
    /// line past the end of `text`, are returned unchanged.
    pub fn locate_in(mut self, text: &str, end_line: usize) -> Self {
        let lines = crate::lines::physical_lines(text);
        if self.line == 0 || self.line > lines.len() {
            return self;
        }
        let end = end_line.clamp(self.line, lines.len());
        let (line, column, width) = locate(&lines, self.line, end, &self.kind);
        self.line = line;
        self.column = column;
        self.width = width;
        self.source_line = Some(lines[line - 1].into());
        self
    }
}

fn location(file: &str, line: usize, column: usize) -> String {
    match (line, column) {
        (0, _) => file.to_string(),
        (l, 0) => format!("{file}:{l}"),
        (l, c) => format!("{file}:{l}:{c}"),
    }
}

/// The caret snippet (with a leading newline), or nothing.
fn render_snippet(line: usize, column: usize, width: usize, source: Option<&str>) -> String {
    let Some(source) = source else {
        return String::new();
    };
    if line == 0 || column == 0 {
        return String::new();
    }
    // Control characters other than tab would garble a terminal.
    let shown: String = source
        .chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect();
    let num = line.to_string();
    let pad = " ".repeat(num.len());
    // Keep tabs in the caret line so the carets line up under tabs.
    let lead: String = shown
        .chars()
        .take(column - 1)
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    let carets = "^".repeat(width.max(1));
    format!("\n{pad} |\n{num} | {shown}\n{pad} | {lead}{carets}")
}

/// Finds the offending text of `kind` on lines `start..=end` (1-based):
/// returns (line, 1-based column, width in characters).
fn locate(lines: &[&str], start: usize, end: usize, kind: &ErrorKind) -> (usize, usize, usize) {
    let (needle, last): (Option<String>, bool) = match kind {
        ErrorKind::UnknownInstruction { word, .. } => (Some(word.clone()), false),
        ErrorKind::UnknownFlag { flag, .. }
        | ErrorKind::FlagMissingValue(flag)
        | ErrorKind::BadBoolFlag { flag, .. } => (Some(format!("--{flag}")), false),
        ErrorKind::DuplicateFlag(flag) => (Some(format!("--{flag}")), true),
        ErrorKind::InvalidEscape(v) => (Some(v.clone()), true),
        ErrorKind::DuplicateDirective(name) => (Some(name.clone()), false),
        ErrorKind::UnterminatedHeredoc(name) => (Some(name.clone()), false),
        ErrorKind::HeredocDestination(_) => (Some("<<".to_string()), true),
        ErrorKind::InvalidStageName(n) | ErrorKind::DuplicateStageName(n) => {
            (Some(n.clone()), true)
        }
        ErrorKind::OnbuildChain => (Some("onbuild".to_string()), true),
        ErrorKind::OnbuildTrigger(kw) => (Some(kw.to_string()), true),
        ErrorKind::MissingEquals(w) => (Some(w.clone()), false),
        ErrorKind::HealthcheckType(t) => (Some(t.clone()), false),
        ErrorKind::InvalidDuration { value, .. } | ErrorKind::InvalidRetries(value) => {
            (Some(value.clone()), false)
        }
        ErrorKind::NotStringArray => (Some("[".to_string()), false),
        _ => (None, false),
    };
    if let Some(needle) = needle.filter(|n| !n.is_empty()) {
        let lower = needle.to_ascii_lowercase();
        let found = (start..=end).find_map(|l| {
            let hay = lines[l - 1].to_ascii_lowercase();
            let at = if last {
                hay.rfind(&lower)
            } else {
                hay.find(&lower)
            };
            at.map(|i| (l, i))
        });
        if let Some((l, byte)) = found {
            let line = lines[l - 1];
            if line.is_char_boundary(byte) {
                let column = line[..byte].chars().count() + 1;
                return (l, column, needle.chars().count());
            }
        }
    }
    // Fall back to the instruction keyword (first word of the first line).
    let line = lines[start - 1];
    let lead = line.len() - line.trim_start().len();
    let word = line[lead..]
        .split(|c: char| c.is_whitespace())
        .next()
        .unwrap_or("");
    (
        start,
        line[..lead].chars().count() + 1,
        word.chars().count(),
    )
}

/// The cause of an [`Error`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The first word of an instruction is not a Dockerfile keyword.
    #[error("unknown instruction {:?}{}", .word, did_you_mean(.suggestion))]
    UnknownInstruction {
        /// The word as written.
        word: String,
        /// A close keyword, if any.
        suggestion: Option<&'static str>,
    },
    /// A parser directive appears twice.
    #[error("only one {0:?} parser directive can be used")]
    DuplicateDirective(String),
    /// `# escape=` with something other than `\` or `` ` ``.
    #[error("invalid escape token {0:?}: must be \\ or `")]
    InvalidEscape(String),
    /// Too few (or too many) arguments.
    #[error("{keyword} requires {expected}")]
    Arguments {
        /// Instruction keyword.
        keyword: &'static str,
        /// e.g. "at least one argument".
        expected: &'static str,
    },
    /// A `--flag` the instruction does not accept.
    #[error("unknown flag \"--{flag}\" for {keyword}")]
    UnknownFlag {
        /// Instruction keyword.
        keyword: &'static str,
        /// Flag name without dashes.
        flag: String,
    },
    /// `--flag` given without `=value` for a flag that needs one, or
    /// `--bool=` with an empty value.
    #[error("missing a value on flag \"--{0}\"")]
    FlagMissingValue(String),
    /// A single-valued flag given twice.
    #[error("duplicate flag specified: \"--{0}\"")]
    DuplicateFlag(String),
    /// A boolean flag whose value is neither true nor false.
    #[error("expecting boolean value for flag \"--{flag}\", not: {value:?}")]
    BadBoolFlag {
        /// Flag name.
        flag: String,
        /// Value given.
        value: String,
    },
    /// A JSON array containing something other than strings.
    #[error("when using JSON array syntax, arrays must be comprised of strings only")]
    NotStringArray,
    /// `SHELL` in shell form.
    #[error("SHELL requires the arguments to be in JSON form")]
    ShellNotJson,
    /// A heredoc whose terminator never appears.
    #[error("unterminated heredoc {0:?}")]
    UnterminatedHeredoc(String),
    /// `COPY <<EOF <<EOT`: the destination is a heredoc.
    #[error("{0} cannot accept a heredoc as a destination")]
    HeredocDestination(&'static str),
    /// An instruction other than ARG before the first FROM.
    #[error("{0} is not allowed before the first FROM (only ARG may precede FROM)")]
    BeforeFrom(&'static str),
    /// The file has no FROM at all.
    #[error("no build stage: the Dockerfile has no FROM instruction")]
    NoStages,
    /// `FROM a b`.
    #[error("FROM requires either one or three arguments (FROM image [AS name])")]
    FromArguments,
    /// `FROM x AS 1bad`.
    #[error(
        "invalid name for build stage: {0:?}, name can't start with a number or contain symbols"
    )]
    InvalidStageName(String),
    /// Two stages with the same name.
    #[error("duplicate stage name {0:?}")]
    DuplicateStageName(String),
    /// `ONBUILD ONBUILD ...`.
    #[error("chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")]
    OnbuildChain,
    /// `ONBUILD FROM` / `ONBUILD MAINTAINER`.
    #[error("{0} isn't allowed as an ONBUILD trigger")]
    OnbuildTrigger(&'static str),
    /// `ENV a=b c` — a word without `=` in the `key=value` form.
    #[error("syntax error - can't find = in {0:?}. Must be of the form: name=value")]
    MissingEquals(String),
    /// Legacy `ENV key` with no value.
    #[error("{0} must have two arguments")]
    TwoArguments(&'static str),
    /// `HEALTHCHECK NONE` with more arguments.
    #[error("HEALTHCHECK NONE takes no arguments")]
    HealthcheckNoneArgs,
    /// `HEALTHCHECK FOO`.
    #[error("unknown type {0:?} in HEALTHCHECK (try CMD)")]
    HealthcheckType(String),
    /// `HEALTHCHECK CMD` with no command.
    #[error("missing command after HEALTHCHECK CMD")]
    HealthcheckMissingCommand,
    /// A HEALTHCHECK duration flag that is not a valid positive duration.
    #[error("invalid duration {value:?} for \"--{flag}\": {reason}")]
    InvalidDuration {
        /// Flag name.
        flag: &'static str,
        /// Value given.
        value: String,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// `--retries` that is not a non-negative 32-bit integer.
    #[error("invalid value {0:?} for \"--retries\": expected a non-negative integer")]
    InvalidRetries(String),
    /// `VOLUME [""]`.
    #[error("VOLUME specified can not be an empty string")]
    EmptyVolume,
    /// A word expansion failed.
    #[error(transparent)]
    Expand(#[from] ExpandError),
}

fn did_you_mean(s: &Option<&'static str>) -> String {
    match s {
        Some(k) => format!(" (did you mean {k}?)"),
        None => String::new(),
    }
}

/// A non-fatal finding, such as a deprecated form.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Warning {
    /// 1-based line.
    pub line: usize,
    /// Human-readable explanation.
    pub message: String,
}
