//! Layer 1½: raw instruction nodes, the equivalent of BuildKit's
//! `parser.Node`.
//!
//! A raw node is one logical line split the way BuildKit's line parser
//! splits it, before any instruction-specific validation: the keyword, the
//! leading `--flags` (quotes removed), and the arguments as the keyword's
//! parse function gives them — nothing expanded, quotes kept:
//!
//! | keywords | arguments |
//! |---|---|
//! | RUN, CMD, ENTRYPOINT, SHELL | the JSON array's strings (`json_form`), else the whole rest as one string |
//! | ADD, COPY, VOLUME | the JSON array's strings (`json_form`), else the blank-separated words |
//! | FROM, EXPOSE | the blank-separated words |
//! | ARG | words split on unquoted whitespace, quotes and escapes kept |
//! | ENV, LABEL | flat `[k1, v1, k2, v2, …]`; `ENV k v` (legacy) gives `[k, v]` and sets `legacy_kv` |
//! | HEALTHCHECK | the type (`CMD`/`NONE`), then the command as for RUN |
//! | USER, WORKDIR, STOPSIGNAL, MAINTAINER | the rest as one string |
//! | ONBUILD | none: the trigger is the `subcommand` node |
//!
//! Heredoc bodies are attached to the node that refers to them (for
//! `ONBUILD RUN <<EOF`, to the subcommand). The typed layer
//! ([`crate::parse`]) is built from the same pass over the file: each raw
//! node is turned into an [`crate::Instruction`] as soon as it is read, so
//! the first error in the file is the one reported.

use serde::Serialize;

use crate::ast::Heredoc;
use crate::error::{Error, ErrorKind, Warning};
use crate::instructions::{self, maybe_json, name_val, parse_words};
use crate::lines::{self, Directives, LineReader, heredoc_refs, split_blank, split_keyword};

/// A here-document as BuildKit's parser records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RawHeredoc {
    /// Delimiter with quotes removed.
    pub name: String,
    /// The body exactly as written, each line followed by `\n` (leading
    /// tabs kept even when `chomp` is set).
    pub content: String,
    /// False when the delimiter was quoted (no expansion of the body).
    pub expand: bool,
    /// True for `<<-`: leading tabs are to be stripped from body lines.
    pub chomp: bool,
    /// The file descriptor written before `<<` (`3<<EOF`); 0 when none.
    pub fd: u64,
}

impl RawHeredoc {
    /// The typed-AST form of this heredoc.
    pub fn to_heredoc(&self) -> Heredoc {
        Heredoc {
            name: self.name.clone(),
            content: self.content.clone(),
            expand: self.expand,
            strip_tabs: self.chomp,
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One instruction as BuildKit's line parser splits it (see the module
/// documentation for how each keyword's arguments are split).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RawNode {
    /// The keyword, upper-cased.
    pub instruction: String,
    /// Leading `--name[=value]` words, quotes removed, in order.
    pub flags: Vec<String>,
    /// The arguments, unexpanded, quotes kept.
    pub args: Vec<String>,
    /// True when the arguments were a JSON string array (exec form).
    pub json_form: bool,
    /// ENV/LABEL written in the legacy `KEY value` form.
    #[serde(skip_serializing_if = "is_false")]
    pub legacy_kv: bool,
    /// The trigger of an ONBUILD.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subcommand: Option<Box<RawNode>>,
    /// Heredocs referred to on this line, in order.
    pub heredocs: Vec<RawHeredoc>,
    /// 1-based first line.
    pub line: usize,
    /// 1-based last line, continuation lines and heredoc bodies included.
    pub end_line: usize,
}

/// Parses a Dockerfile into raw nodes, one per instruction.
///
/// Fails on what BuildKit's parser rejects (bad or repeated directives, a
/// JSON array of non-strings, `ENV` without a value or with a word missing
/// `=`, unterminated heredocs) and, unlike BuildKit's raw parser, on an
/// unknown instruction. Flags, argument counts and stage structure are not
/// checked here: [`crate::parse`] does that.
///
/// # Errors
/// The first syntax error, with file, line, column and snippet.
pub fn parse_raw(file_name: &str, text: &str) -> Result<Vec<RawNode>, Error> {
    let mut parser = RawParser::new(file_name, text)?;
    let mut warnings = Vec::new();
    let mut nodes = Vec::new();
    while let Some(item) = parser.next_item(&mut warnings) {
        nodes.push(item?.node);
    }
    Ok(nodes)
}

/// A raw node plus what the typed layer needs.
#[derive(Debug)]
pub(crate) struct RawItem {
    pub node: RawNode,
    /// The keyword as a static upper-case string.
    pub keyword: &'static str,
    /// The logical line after the keyword (flags included), trimmed.
    pub rest: String,
    /// The logical line, trimmed.
    pub source: String,
    /// Last line of the logical line (without heredoc bodies).
    pub logical_end: usize,
}

impl RawItem {
    /// The heredocs of the node or of its ONBUILD trigger, typed.
    pub fn heredocs(&self) -> Vec<Heredoc> {
        let node = self.node.subcommand.as_deref().unwrap_or(&self.node);
        node.heredocs.iter().map(RawHeredoc::to_heredoc).collect()
    }
}

/// Streaming raw parser over a file's text.
#[derive(Debug)]
pub(crate) struct RawParser<'a> {
    file_name: &'a str,
    text: &'a str,
    reader: LineReader<'a>,
    pub escape: char,
    pub directives: Directives,
}

impl<'a> RawParser<'a> {
    pub fn new(file_name: &'a str, text: &'a str) -> Result<Self, Error> {
        let lines = lines::physical_lines(text);
        let directives = lines::scan_directives(&lines)
            .map_err(|(l, k)| Error::new(file_name, l, k).locate_in(text, l))?;
        let escape = directives.escape.unwrap_or('\\');
        Ok(RawParser {
            file_name,
            text,
            reader: LineReader::new(lines, escape),
            escape,
            directives,
        })
    }

    /// An error located on lines `line..=end_line`.
    pub fn error(&self, line: usize, end_line: usize, kind: ErrorKind) -> Error {
        Error::new(self.file_name, line, kind).locate_in(self.text, end_line)
    }

    pub fn next_item(&mut self, warnings: &mut Vec<Warning>) -> Option<Result<RawItem, Error>> {
        let logical = self.reader.next_logical(warnings)?;
        let line = logical.line;
        let (mut node, keyword) = match node_from_line(&logical.text, self.escape) {
            Ok(n) => n,
            Err(k) => return Some(Err(self.error(line, logical.end_line, k))),
        };
        // Heredocs belong to RUN/COPY/ADD in shell form, directly or as an
        // ONBUILD trigger (BuildKit's `canContainHeredoc`).
        let target = match node.subcommand.as_deref_mut() {
            Some(sub) => sub,
            None => &mut node,
        };
        if instructions::can_have_heredocs(&target.instruction) && !target.json_form {
            for r in heredoc_refs(&logical.text) {
                let Some(content) = self.reader.heredoc_body(&r.name, r.strip_tabs) else {
                    let kind = ErrorKind::UnterminatedHeredoc(r.name);
                    return Some(Err(self.error(line, logical.end_line, kind)));
                };
                target.heredocs.push(RawHeredoc {
                    name: r.name,
                    content,
                    expand: r.expand,
                    chomp: r.strip_tabs,
                    fd: r.fd,
                });
            }
        }
        let end_line = if target.heredocs.is_empty() {
            logical.end_line
        } else {
            self.reader.consumed()
        };
        set_lines(&mut node, line, end_line);
        let (_, rest) = split_keyword(&logical.text);
        Some(Ok(RawItem {
            node,
            keyword,
            rest: rest.to_string(),
            source: logical.text.trim().to_string(),
            logical_end: logical.end_line,
        }))
    }
}

fn set_lines(node: &mut RawNode, line: usize, end_line: usize) {
    node.line = line;
    node.end_line = end_line;
    if let Some(sub) = node.subcommand.as_deref_mut() {
        set_lines(sub, line, end_line);
    }
}

/// Splits one logical line into a raw node (lines not set yet).
fn node_from_line(text: &str, escape: char) -> Result<(RawNode, &'static str), ErrorKind> {
    let (word, rest) = split_keyword(text);
    let keyword = instructions::keyword(word)?;
    let (flags, rest) = lines::extract_flags(rest);
    let mut node = RawNode {
        instruction: keyword.to_string(),
        flags,
        args: Vec::new(),
        json_form: false,
        legacy_kv: false,
        subcommand: None,
        heredocs: Vec::new(),
        line: 0,
        end_line: 0,
    };
    match keyword {
        "RUN" | "CMD" | "ENTRYPOINT" | "SHELL" => {
            (node.args, node.json_form) = maybe_json_or_string(rest)?;
        }
        "ADD" | "COPY" | "VOLUME" => match maybe_json(rest)? {
            Some(v) => (node.args, node.json_form) = (v, true),
            None => node.args = split_blank(rest),
        },
        "FROM" | "EXPOSE" => node.args = split_blank(rest),
        "ARG" => node.args = parse_words(rest, escape),
        "ENV" | "LABEL" => {
            if !rest.is_empty() {
                (node.args, node.legacy_kv) = name_val(keyword, rest, escape)?;
            }
        }
        "HEALTHCHECK" => {
            let (typ, cmd) = split_keyword(rest);
            if !typ.is_empty() {
                let (args, json) = maybe_json_or_string(cmd)?;
                node.args = std::iter::once(typ.to_string()).chain(args).collect();
                node.json_form = json;
            }
        }
        "ONBUILD" => {
            if !rest.is_empty() {
                let (sub, _) = node_from_line(rest, escape)?;
                node.subcommand = Some(Box::new(sub));
            }
        }
        // USER, WORKDIR, STOPSIGNAL, MAINTAINER.
        _ => {
            if !rest.is_empty() {
                node.args = vec![rest.to_string()];
            }
        }
    }
    Ok((node, keyword))
}

/// BuildKit's `parseMaybeJSON`: a JSON string array, else the text as one
/// argument (none when empty).
fn maybe_json_or_string(rest: &str) -> Result<(Vec<String>, bool), ErrorKind> {
    if rest.is_empty() {
        return Ok((Vec::new(), false));
    }
    Ok(match maybe_json(rest)? {
        Some(v) => (v, true),
        None => (vec![rest.to_string()], false),
    })
}
