//! Dockerfile frontend for cairn.
//!
//! We own this parser instead of using the `dockerfile-parser` crate, which
//! fails on `# escape=`, heredocs, valueless flags (`--link`) and
//! `RUN --mount` (see the project's crate research, §2). The design is
//! line-based, like BuildKit's, in three layers:
//!
//! 1. **Directives and logical lines** (`lines`), split into **raw nodes**
//!    ([`parse_raw`], BuildKit's `parser.Node`: keyword, flags, arguments
//!    as each keyword's parse function splits them, heredocs): parser directives
//!    (`# syntax=`, `# escape=`, `# check=`) are read only at the top of the
//!    file (after an optional `#!` line), case-insensitively, and a repeated
//!    directive is an error. The BOM is stripped. Physical lines are joined
//!    into logical lines with an escape-aware continuation (the active
//!    escape token at the end of a line, optionally followed by blanks);
//!    comment lines and blank lines inside a continuation are dropped.
//!    Heredoc bodies (`<<EOF`, `<<-EOF`, `<<"EOF"`, several per line) are
//!    captured from the lines that follow a RUN/COPY/ADD line.
//! 2. **Typed instructions** (`instructions`): keywords are matched
//!    case-insensitively; leading `--name=value` / `--bool` flags are
//!    checked against each instruction's allowed set; exec form is used
//!    when the arguments are a valid JSON string array, otherwise shell
//!    form (BuildKit's rule); all 18 instructions become [`Instruction`]
//!    variants and stages are assembled from FROM lines.
//! 3. **Word expansion** ([`expand`]): BuildKit shell-lexer semantics for
//!    `$V`, `${V}` and the parameter-expansion operators, quote removal and
//!    the escape token. The parser never expands; the engine owns ARG/ENV
//!    scoping and calls [`Instruction::expanded`] (or the [`expand`]
//!    functions) when it evaluates an instruction. [`ArgScope`] is a small
//!    helper for that scoping.
//!
//! No input makes [`parse`] or the expansion functions panic; every failure
//! is an [`Error`] that names the file, the line and the cause.
//!
//! ```
//! let df = cairn_dockerfile::parse("Dockerfile", "FROM alpine AS Base\nRUN echo hi\n").unwrap();
//! assert_eq!(df.stages[0].name.as_deref(), Some("base"));
//! assert_eq!(df.stages[0].instructions[0].node.keyword(), "RUN");
//! ```

mod ast;
mod error;
pub mod expand;
mod instructions;
mod lines;
mod raw;
mod scope;

pub use ast::{
    Add, ArgDecl, CommandForm, Copy, Dockerfile, From, Healthcheck, HealthcheckConfig, Heredoc,
    Instruction, Located, Run, Stage,
};
pub use error::{Error, ErrorKind, Warning};
pub use expand::{ExpandError, expand_heredoc, expand_word, expand_words};
pub use instructions::KEYWORDS;
pub use raw::{RawHeredoc, RawNode, parse_raw};
pub use scope::ArgScope;

use instructions::Parsed;
use raw::RawParser;

/// Parses a Dockerfile.
///
/// `file_name` is only used in error messages and [`Dockerfile::file_name`].
///
/// # Errors
/// The first syntax error, with its file name, 1-based line and column and
/// a snippet of the offending line.
pub fn parse(file_name: &str, text: &str) -> Result<Dockerfile, Error> {
    let mut raw = RawParser::new(file_name, text)?;
    let escape = raw.escape;
    let mut warnings = Vec::new();
    let mut global_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();

    while let Some(item) = raw.next_item(&mut warnings) {
        let item = item?;
        let (line, end_line) = (item.node.line, item.node.end_line);
        let err = |kind: ErrorKind| raw.error(line, item.logical_end, kind);
        let kw = item.keyword;
        let parsed =
            instructions::build(kw, &item.rest, item.heredocs(), escape, line, &mut warnings)
                .map_err(err)?;
        let source = item.source;
        match parsed {
            Parsed::From(from) => {
                let name = from.alias.as_ref().map(|a| a.to_lowercase());
                if let Some(n) = &name
                    && stages.iter().any(|s| s.name.as_ref() == Some(n))
                {
                    return Err(err(ErrorKind::DuplicateStageName(n.clone())));
                }
                stages.push(Stage {
                    index: stages.len(),
                    name,
                    from: Located {
                        line,
                        end_line,
                        source,
                        node: from,
                    },
                    instructions: Vec::new(),
                });
            }
            Parsed::Instruction(Instruction::Arg(decls)) if stages.is_empty() => {
                global_args.extend(decls.into_iter().map(|d| Located {
                    line,
                    end_line,
                    source: source.clone(),
                    node: d,
                }));
            }
            Parsed::Instruction(node) => {
                let Some(stage) = stages.last_mut() else {
                    return Err(err(ErrorKind::BeforeFrom(kw)));
                };
                stage.instructions.push(Located {
                    line,
                    end_line,
                    source,
                    node,
                });
            }
        }
    }

    if stages.is_empty() {
        return Err(Error::new(file_name, 0, ErrorKind::NoStages));
    }
    Ok(Dockerfile {
        file_name: file_name.to_string(),
        escape,
        syntax: raw.directives.syntax.take(),
        check: raw.directives.check.take(),
        global_args,
        stages,
        warnings,
    })
}

#[cfg(test)]
mod reference_tests;
#[cfg(test)]
mod tests;
