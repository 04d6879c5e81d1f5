//! The crate's error type: every parse failure names file, line and cause.

use thiserror::Error;

use crate::expand::ExpandError;

/// A Dockerfile that could not be parsed (or expanded).
///
/// Displays as `FILE:LINE: CAUSE`, e.g.
/// `Dockerfile:7: unknown instruction "RUNN" (did you mean RUN?)`. Errors
/// that concern the whole file (no `FROM`) have `line == 0` and display as
/// `FILE: CAUSE`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{}: {kind}", location(.file, *.line))]
pub struct Error {
    /// The file name given to [`crate::parse`].
    pub file: String,
    /// 1-based line of the instruction at fault; 0 for whole-file errors.
    pub line: usize,
    /// What went wrong.
    #[source]
    pub kind: ErrorKind,
}

impl Error {
    /// Builds an error; the engine uses this to report expansion failures
    /// with the location of the instruction being evaluated.
    pub fn new(file: impl Into<String>, line: usize, kind: ErrorKind) -> Self {
        Error {
            file: file.into(),
            line,
            kind,
        }
    }
}

fn location(file: &str, line: usize) -> String {
    if line == 0 {
        file.to_string()
    } else {
        format!("{file}:{line}")
    }
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
