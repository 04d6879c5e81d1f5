//! Layer 2: typed instructions from logical lines.
//!
//! Mirrors BuildKit's per-keyword dispatch (`parseMaybeJSON`,
//! `parseMaybeJSONToList`, `parseNameVal`, ...) and its flag parser
//! (`--name=value`, valueless booleans such as `--link`).

use std::time::Duration;

use crate::ast::{
    Add, ArgDecl, CommandForm, Copy, From, Healthcheck, HealthcheckConfig, Heredoc, Instruction,
    Run,
};
use crate::error::{ErrorKind, Warning};
use crate::lines::{extract_flags, heredoc_ref, split_blank, split_keyword};

/// Every keyword, upper case.
pub const KEYWORDS: [&str; 18] = [
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Result of parsing one logical line.
#[derive(Debug)]
pub(crate) enum Parsed {
    From(From),
    Instruction(Instruction),
}

/// Looks up a keyword case-insensitively.
pub(crate) fn keyword(word: &str) -> Result<&'static str, ErrorKind> {
    KEYWORDS
        .iter()
        .find(|k| k.eq_ignore_ascii_case(word))
        .copied()
        .ok_or_else(|| ErrorKind::UnknownInstruction {
            word: word.to_string(),
            suggestion: suggest(word),
        })
}

fn suggest(word: &str) -> Option<&'static str> {
    let upper = word.to_uppercase();
    KEYWORDS
        .iter()
        .map(|k| (distance(&upper, k), *k))
        .filter(|&(d, _)| d <= 2)
        .min_by_key(|&(d, _)| d)
        .map(|(_, k)| k)
}

/// Levenshtein distance (inputs are short keywords).
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().take(64).enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Whether `rest` is a JSON array (exec form) — `Ok(None)` when it is not
/// valid JSON (shell form), an error when it is a JSON array of non-strings.
pub(crate) fn maybe_json(rest: &str) -> Result<Option<Vec<String>>, ErrorKind> {
    let t = rest.trim_start();
    if !t.starts_with('[') {
        return Ok(None);
    }
    match serde_json::from_str::<serde_json::Value>(t) {
        Ok(serde_json::Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                serde_json::Value::String(s) => Ok(s),
                _ => Err(ErrorKind::NotStringArray),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        _ => Ok(None),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Str,
    Strs,
}

#[derive(Debug)]
struct Flags {
    keyword: &'static str,
    values: Vec<(&'static str, Kind, Vec<String>)>,
}

impl Flags {
    /// Parses raw `--name[=value]` words against the allowed specs.
    fn parse(
        keyword: &'static str,
        raw: &[String],
        specs: &[(&'static str, Kind)],
    ) -> Result<Flags, ErrorKind> {
        let mut values: Vec<(&'static str, Kind, Vec<String>)> =
            specs.iter().map(|&(n, k)| (n, k, Vec::new())).collect();
        for arg in raw {
            let arg = arg.strip_prefix("--").unwrap_or(arg);
            let (name, value) = match arg.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (arg, None),
            };
            let Some((_, kind, slot)) = values.iter_mut().find(|(n, _, _)| *n == name) else {
                return Err(ErrorKind::UnknownFlag {
                    keyword,
                    flag: name.to_string(),
                });
            };
            if *kind != Kind::Strs && !slot.is_empty() {
                return Err(ErrorKind::DuplicateFlag(name.to_string()));
            }
            let v = match (*kind, value) {
                (Kind::Bool, None) => "true".to_string(),
                (Kind::Bool, Some("")) => {
                    return Err(ErrorKind::FlagMissingValue(name.to_string()));
                }
                (Kind::Bool, Some(v)) => match v.to_ascii_lowercase().as_str() {
                    "true" => "true".to_string(),
                    "false" => "false".to_string(),
                    _ => {
                        return Err(ErrorKind::BadBoolFlag {
                            flag: name.to_string(),
                            value: v.to_string(),
                        });
                    }
                },
                (_, None) => return Err(ErrorKind::FlagMissingValue(name.to_string())),
                (_, Some(v)) => v.to_string(),
            };
            slot.push(v);
        }
        Ok(Flags { keyword, values })
    }

    fn get(&self, name: &str) -> &[String] {
        self.values
            .iter()
            .find(|(n, _, _)| *n == name)
            .map_or(&[], |(_, _, v)| v.as_slice())
    }

    fn string(&self, name: &str) -> Option<String> {
        self.get(name).first().cloned()
    }

    fn boolean(&self, name: &str) -> bool {
        self.get(name).first().is_some_and(|v| v == "true")
    }

    fn strings(&self, name: &str) -> Vec<String> {
        self.get(name).to_vec()
    }

    fn none(keyword: &'static str, raw: &[String]) -> Result<(), ErrorKind> {
        Flags::parse(keyword, raw, &[]).map(|f| debug_assert_eq!(f.keyword, keyword))
    }
}

fn args_err(keyword: &'static str, expected: &'static str) -> ErrorKind {
    ErrorKind::Arguments { keyword, expected }
}

/// BuildKit's `parseWords`: split on unquoted whitespace, keeping quotes
/// and escape tokens in the words.
pub(crate) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut blank_ok = false;
    let mut quote: Option<char> = None;
    let mut chars = rest.chars().peekable();
    while let Some(ch) = chars.next() {
        match quote {
            None => {
                if ch.is_whitespace() {
                    if blank_ok || !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                    blank_ok = false;
                    continue;
                }
                if ch == '\'' || ch == '"' {
                    quote = Some(ch);
                    blank_ok = true;
                }
                if ch == escape {
                    match chars.next() {
                        None => continue,
                        Some(next) => {
                            word.push(ch);
                            word.push(next);
                            continue;
                        }
                    }
                }
                word.push(ch);
            }
            Some(q) => {
                if ch == q {
                    quote = None;
                }
                if ch == escape && q != '\'' {
                    match chars.next() {
                        None => continue,
                        Some(next) => {
                            word.push(ch);
                            word.push(next);
                            continue;
                        }
                    }
                }
                word.push(ch);
            }
        }
    }
    if blank_ok || !word.is_empty() {
        words.push(word);
    }
    words
}

/// BuildKit's `parseNameVal` for ENV/LABEL: `k=v k2="v 2"` gives the flat
/// list `[k, v, k2, "v 2"]` (quotes kept); the legacy `k value with
/// spaces` gives `[k, "value with spaces"]` and `true`. `rest` must not be
/// empty.
pub(crate) fn name_val(
    keyword: &'static str,
    rest: &str,
    escape: char,
) -> Result<(Vec<String>, bool), ErrorKind> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Err(args_err(keyword, "at least one argument"));
    };
    if !first.contains('=') {
        let (key, value) = split_keyword(rest);
        if value.is_empty() {
            return Err(ErrorKind::TwoArguments(keyword));
        }
        return Ok((vec![key.to_string(), value.to_string()], true));
    }
    let mut flat = Vec::with_capacity(words.len() * 2);
    for w in words {
        match w.split_once('=') {
            Some((k, v)) => {
                flat.push(k.to_string());
                flat.push(v.to_string());
            }
            None => return Err(ErrorKind::MissingEquals(w)),
        }
    }
    Ok((flat, false))
}

/// ENV/LABEL as key/value pairs (see [`name_val`]).
fn name_values(
    keyword: &'static str,
    rest: &str,
    escape: char,
    line: usize,
    warnings: &mut Vec<Warning>,
) -> Result<Vec<(String, String)>, ErrorKind> {
    let (flat, legacy) = name_val(keyword, rest, escape)?;
    if legacy {
        warnings.push(Warning {
            line,
            message: format!("legacy \"{keyword} key value\" format; use \"{keyword} key=value\""),
        });
    }
    let mut it = flat.into_iter();
    let mut pairs = Vec::new();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        pairs.push((k, v));
    }
    Ok(pairs)
}

/// ADD/COPY/VOLUME argument list: JSON array or blank-separated words.
fn json_or_words(rest: &str) -> Result<(Vec<String>, bool), ErrorKind> {
    Ok(match maybe_json(rest)? {
        Some(v) => (v, true),
        None => (split_blank(rest), false),
    })
}

/// Shell-or-exec command for RUN/CMD/ENTRYPOINT/HEALTHCHECK CMD.
fn command(rest: &str) -> Result<Option<CommandForm>, ErrorKind> {
    if rest.is_empty() {
        return Ok(None);
    }
    Ok(Some(match maybe_json(rest)? {
        Some(v) => CommandForm::Exec(v),
        None => CommandForm::Shell(rest.to_string()),
    }))
}

/// Sources, destination and heredocs shared by COPY and ADD.
struct Transfer {
    sources: Vec<String>,
    dest: String,
    heredocs: Vec<Heredoc>,
}

fn transfer(
    keyword: &'static str,
    rest: &str,
    heredocs: Vec<Heredoc>,
) -> Result<Transfer, ErrorKind> {
    let (mut args, json) = json_or_words(rest)?;
    if args.len() < 2 {
        return Err(args_err(
            keyword,
            "at least two arguments (source and destination)",
        ));
    }
    let dest = args.pop().unwrap_or_default();
    if !json && heredoc_ref(&dest).is_some() {
        return Err(ErrorKind::HeredocDestination(keyword));
    }
    let sources = if json {
        args
    } else {
        args.into_iter()
            .filter(|a| heredoc_ref(a).is_none())
            .collect()
    };
    Ok(Transfer {
        sources,
        dest,
        heredocs,
    })
}

/// Parses a Go `time.ParseDuration` string (non-negative only).
pub(crate) fn parse_duration(s: &str) -> Result<Duration, &'static str> {
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.starts_with('-') && s != "-0" {
        return Err("cannot be negative");
    }
    let s = s.strip_prefix('-').unwrap_or(s);
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err("empty duration");
    }
    let mut total: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let int_len = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let (int, after) = rest.split_at(int_len);
        let (frac, after) = match after.strip_prefix('.') {
            Some(a) => {
                let n = a.len() - a.trim_start_matches(|c: char| c.is_ascii_digit()).len();
                a.split_at(n)
            }
            None => ("", after),
        };
        if int.is_empty() && frac.is_empty() {
            return Err("expected a number");
        }
        let unit_len = after
            .char_indices()
            .find(|&(_, c)| c == '.' || c.is_ascii_digit())
            .map_or(after.len(), |(i, _)| i);
        let (unit, after) = after.split_at(unit_len);
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err("missing unit"),
            _ => return Err("unknown unit"),
        };
        let whole: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| "overflow")?
        };
        let mut part = whole.checked_mul(scale).ok_or("overflow")?;
        let mut div = 1u128;
        for d in frac.bytes().take(30) {
            div *= 10;
            part += u128::from(d - b'0') * scale / div;
        }
        total = total.checked_add(part).ok_or("overflow")?;
        if total > u128::from(i64::MAX as u64) {
            return Err("overflow");
        }
        rest = after;
    }
    let secs = (total / 1_000_000_000) as u64;
    let nanos = (total % 1_000_000_000) as u32;
    Ok(Duration::new(secs, nanos))
}

fn duration_flag(flags: &Flags, name: &'static str) -> Result<Option<Duration>, ErrorKind> {
    let Some(value) = flags.string(name) else {
        return Ok(None);
    };
    let err = |reason| ErrorKind::InvalidDuration {
        flag: name,
        value: value.clone(),
        reason,
    };
    let d = parse_duration(&value).map_err(err)?;
    if !d.is_zero() && d < Duration::from_millis(1) {
        return Err(err("cannot be less than 1ms"));
    }
    Ok(Some(d))
}

fn healthcheck(rest: &str, raw_flags: &[String]) -> Result<Healthcheck, ErrorKind> {
    let (typ, cmd) = split_keyword(rest);
    if typ.is_empty() {
        return Err(args_err("HEALTHCHECK", "at least one argument"));
    }
    match typ.to_ascii_uppercase().as_str() {
        "NONE" => {
            if !cmd.is_empty() || !raw_flags.is_empty() {
                return Err(ErrorKind::HealthcheckNoneArgs);
            }
            Ok(Healthcheck::None)
        }
        "CMD" => {
            let flags = Flags::parse(
                "HEALTHCHECK",
                raw_flags,
                &[
                    ("interval", Kind::Str),
                    ("timeout", Kind::Str),
                    ("start-period", Kind::Str),
                    ("start-interval", Kind::Str),
                    ("retries", Kind::Str),
                ],
            )?;
            let command = match command(cmd)? {
                None => return Err(ErrorKind::HealthcheckMissingCommand),
                Some(CommandForm::Exec(v)) if v.is_empty() => {
                    return Err(ErrorKind::HealthcheckMissingCommand);
                }
                Some(c) => c,
            };
            let retries = match flags.string("retries") {
                None => None,
                Some(v) => match v.parse::<i64>() {
                    Ok(n) if (0..=i64::from(i32::MAX)).contains(&n) => Some(n as u32),
                    _ => return Err(ErrorKind::InvalidRetries(v)),
                },
            };
            Ok(Healthcheck::Check(HealthcheckConfig {
                command,
                interval: duration_flag(&flags, "interval")?,
                timeout: duration_flag(&flags, "timeout")?,
                start_period: duration_flag(&flags, "start-period")?,
                start_interval: duration_flag(&flags, "start-interval")?,
                retries,
            }))
        }
        _ => Err(ErrorKind::HealthcheckType(typ.to_string())),
    }
}

fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

/// Builds one instruction. `rest` is the text after the keyword (flags
/// included); `heredocs` are the already-captured bodies.
pub(crate) fn build(
    kw: &'static str,
    rest: &str,
    heredocs: Vec<Heredoc>,
    escape: char,
    line: usize,
    warnings: &mut Vec<Warning>,
) -> Result<Parsed, ErrorKind> {
    let (raw_flags, rest) = extract_flags(rest);
    let raw_flags = raw_flags.as_slice();
    let one = |kw: &'static str| -> Result<String, ErrorKind> {
        Flags::none(kw, raw_flags)?;
        if rest.is_empty() {
            return Err(args_err(kw, "exactly one argument"));
        }
        Ok(rest.to_string())
    };
    let instruction = match kw {
        "FROM" => {
            let flags = Flags::parse(kw, raw_flags, &[("platform", Kind::Str)])?;
            let args = split_blank(rest);
            let alias = match args.len() {
                1 => None,
                3 if args[1].eq_ignore_ascii_case("as") => {
                    if !valid_stage_name(&args[2].to_lowercase()) {
                        return Err(ErrorKind::InvalidStageName(args[2].clone()));
                    }
                    Some(args[2].clone())
                }
                _ => return Err(ErrorKind::FromArguments),
            };
            return Ok(Parsed::From(From {
                image: args[0].clone(),
                platform: flags.string("platform"),
                alias,
            }));
        }
        "RUN" => {
            let flags = Flags::parse(
                kw,
                raw_flags,
                &[
                    ("mount", Kind::Strs),
                    ("network", Kind::Str),
                    ("security", Kind::Str),
                ],
            )?;
            let command = match command(rest)? {
                None => return Err(args_err(kw, "at least one argument")),
                Some(CommandForm::Exec(v)) if v.is_empty() => {
                    return Err(args_err(kw, "at least one argument"));
                }
                Some(c) => c,
            };
            Instruction::Run(Run {
                mounts: flags.strings("mount"),
                network: flags.string("network"),
                security: flags.string("security"),
                command,
                heredocs,
            })
        }
        "CMD" | "ENTRYPOINT" => {
            Flags::none(kw, raw_flags)?;
            let c = command(rest)?.ok_or_else(|| args_err(kw, "at least one argument"))?;
            if kw == "CMD" {
                Instruction::Cmd(c)
            } else {
                Instruction::Entrypoint(c)
            }
        }
        "SHELL" => {
            Flags::none(kw, raw_flags)?;
            match command(rest)? {
                None => return Err(args_err(kw, "at least one argument")),
                Some(CommandForm::Shell(_)) => return Err(ErrorKind::ShellNotJson),
                Some(CommandForm::Exec(v)) if v.is_empty() => {
                    return Err(args_err(kw, "at least one argument"));
                }
                Some(CommandForm::Exec(v)) => Instruction::Shell(v),
            }
        }
        "ENV" | "LABEL" => {
            Flags::none(kw, raw_flags)?;
            let pairs = name_values(kw, rest, escape, line, warnings)?;
            if kw == "ENV" {
                Instruction::Env(pairs)
            } else {
                Instruction::Label(pairs)
            }
        }
        "ARG" => {
            Flags::none(kw, raw_flags)?;
            let words = parse_words(rest, escape);
            if words.is_empty() {
                return Err(args_err(kw, "at least one argument"));
            }
            Instruction::Arg(
                words
                    .into_iter()
                    .map(|w| match w.split_once('=') {
                        Some((n, d)) => ArgDecl {
                            name: n.to_string(),
                            default: Some(d.to_string()),
                        },
                        None => ArgDecl {
                            name: w,
                            default: None,
                        },
                    })
                    .collect(),
            )
        }
        "WORKDIR" => Instruction::Workdir(one(kw)?),
        "USER" => Instruction::User(one(kw)?),
        "STOPSIGNAL" => Instruction::StopSignal(one(kw)?),
        "MAINTAINER" => {
            warnings.push(Warning {
                line,
                message: "MAINTAINER is deprecated; use LABEL org.opencontainers.image.authors=... instead"
                    .to_string(),
            });
            Instruction::Maintainer(one(kw)?)
        }
        "EXPOSE" => {
            Flags::none(kw, raw_flags)?;
            let ports = split_blank(rest);
            if ports.is_empty() {
                return Err(args_err(kw, "at least one argument"));
            }
            Instruction::Expose(ports)
        }
        "VOLUME" => {
            Flags::none(kw, raw_flags)?;
            let (paths, json) = json_or_words(rest)?;
            if paths.is_empty() {
                return Err(args_err(kw, "at least one argument"));
            }
            if json && paths.iter().any(|p| p.trim().is_empty()) {
                return Err(ErrorKind::EmptyVolume);
            }
            Instruction::Volume(paths)
        }
        "COPY" => {
            let flags = Flags::parse(
                kw,
                raw_flags,
                &[
                    ("from", Kind::Str),
                    ("chown", Kind::Str),
                    ("chmod", Kind::Str),
                    ("link", Kind::Bool),
                    ("parents", Kind::Bool),
                    ("exclude", Kind::Strs),
                ],
            )?;
            let t = transfer(kw, rest, heredocs)?;
            Instruction::Copy(Copy {
                sources: t.sources,
                dest: t.dest,
                from: flags.string("from"),
                chown: flags.string("chown"),
                chmod: flags.string("chmod"),
                link: flags.boolean("link"),
                parents: flags.boolean("parents"),
                exclude: flags.strings("exclude"),
                heredocs: t.heredocs,
            })
        }
        "ADD" => {
            let flags = Flags::parse(
                kw,
                raw_flags,
                &[
                    ("chown", Kind::Str),
                    ("chmod", Kind::Str),
                    ("checksum", Kind::Str),
                    ("link", Kind::Bool),
                    ("parents", Kind::Bool),
                    ("keep-git-dir", Kind::Bool),
                    ("exclude", Kind::Strs),
                ],
            )?;
            let t = transfer(kw, rest, heredocs)?;
            Instruction::Add(Add {
                sources: t.sources,
                dest: t.dest,
                chown: flags.string("chown"),
                chmod: flags.string("chmod"),
                link: flags.boolean("link"),
                parents: flags.boolean("parents"),
                exclude: flags.strings("exclude"),
                checksum: flags.string("checksum"),
                keep_git_dir: flags.boolean("keep-git-dir"),
                heredocs: t.heredocs,
            })
        }
        "HEALTHCHECK" => Instruction::Healthcheck(healthcheck(rest, raw_flags)?),
        "ONBUILD" => {
            Flags::none(kw, raw_flags)?;
            let (inner_word, inner_rest) = split_keyword(rest);
            if inner_word.is_empty() {
                return Err(args_err(kw, "at least one argument"));
            }
            let inner = keyword(inner_word)?;
            match inner {
                "ONBUILD" => return Err(ErrorKind::OnbuildChain),
                "FROM" | "MAINTAINER" => return Err(ErrorKind::OnbuildTrigger(inner)),
                _ => {}
            }
            match build(inner, inner_rest, heredocs, escape, line, warnings)? {
                Parsed::Instruction(i) => Instruction::Onbuild(Box::new(i)),
                Parsed::From(_) => return Err(ErrorKind::OnbuildTrigger("FROM")),
            }
        }
        other => {
            return Err(ErrorKind::UnknownInstruction {
                word: other.to_string(),
                suggestion: None,
            });
        }
    };
    Ok(Parsed::Instruction(instruction))
}

/// Whether a keyword may carry heredocs (when not in JSON form).
pub(crate) fn can_have_heredocs(kw: &str) -> bool {
    matches!(kw, "RUN" | "COPY" | "ADD")
}
