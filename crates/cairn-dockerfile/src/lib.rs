//! Dockerfile frontend for cairn.
//!
//! We own this parser instead of using the `dockerfile-parser` crate, which
//! fails on `# escape=`, heredocs, valueless flags (`--link`) and
//! `RUN --mount` (see the project's crate research, §2). The design is
//! line-based, like BuildKit's, in three layers:
//!
//! 1. **Directives and logical lines** (`lines`): parser directives
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
mod scope;

pub use ast::{
    Add, ArgDecl, CommandForm, Copy, Dockerfile, From, Healthcheck, HealthcheckConfig, Heredoc,
    Instruction, Located, Run, Stage,
};
pub use error::{Error, ErrorKind, Warning};
pub use expand::{ExpandError, expand_heredoc, expand_word, expand_words};
pub use instructions::KEYWORDS;
pub use scope::ArgScope;

use instructions::Parsed;
use lines::{LineReader, extract_flags, heredoc_refs, physical_lines, split_keyword};

/// Parses a Dockerfile.
///
/// `file_name` is only used in error messages and [`Dockerfile::file_name`].
///
/// # Errors
/// The first syntax error, with its file name and 1-based line.
pub fn parse(file_name: &str, text: &str) -> Result<Dockerfile, Error> {
    let err = |line: usize, kind: ErrorKind| Error::new(file_name, line, kind);
    let lines = physical_lines(text);
    let directives = lines::scan_directives(&lines).map_err(|(l, k)| err(l, k))?;
    let escape = directives.escape.unwrap_or('\\');
    let mut reader = LineReader::new(lines, escape);
    let mut warnings = Vec::new();
    let mut global_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();

    while let Some(logical) = reader.next_logical(&mut warnings) {
        let line = logical.line;
        let (word, rest) = split_keyword(&logical.text);
        let kw = instructions::keyword(word).map_err(|k| err(line, k))?;

        let mut heredocs = Vec::new();
        if instructions::can_have_heredocs(kw) {
            let (_, args) = extract_flags(rest);
            let is_json = matches!(instructions::maybe_json(args), Ok(Some(_)));
            if !is_json {
                for r in heredoc_refs(args) {
                    let content = reader
                        .heredoc_body(&r.name, r.strip_tabs)
                        .ok_or_else(|| err(line, ErrorKind::UnterminatedHeredoc(r.name.clone())))?;
                    heredocs.push(Heredoc {
                        name: r.name,
                        content,
                        expand: r.expand,
                        strip_tabs: r.strip_tabs,
                    });
                }
            }
        }
        let end_line = if heredocs.is_empty() {
            logical.end_line
        } else {
            reader.consumed()
        };

        let parsed = instructions::build(kw, rest, heredocs, escape, line, &mut warnings)
            .map_err(|k| err(line, k))?;
        let source = logical.text.trim().to_string();
        match parsed {
            Parsed::From(from) => {
                let name = from.alias.as_ref().map(|a| a.to_lowercase());
                if let Some(n) = &name
                    && stages.iter().any(|s| s.name.as_ref() == Some(n))
                {
                    return Err(err(line, ErrorKind::DuplicateStageName(n.clone())));
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
                    return Err(err(line, ErrorKind::BeforeFrom(kw)));
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
        return Err(err(0, ErrorKind::NoStages));
    }
    Ok(Dockerfile {
        file_name: file_name.to_string(),
        escape,
        syntax: directives.syntax,
        check: directives.check,
        global_args,
        stages,
        warnings,
    })
}

#[cfg(test)]
mod tests;
