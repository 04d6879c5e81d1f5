//! `cairn parse` and `cairn expand`: the Dockerfile frontend as a contract
//! for other tools. Neither enters a namespace nor touches the state dir.
//!
//! * `cairn parse --format json PATH` prints the raw instruction nodes
//!   ([`cairn_dockerfile::RawNode`]) as a JSON array. The file must also
//!   pass the full parser (flags, argument counts, stages), so a file that
//!   `cairn build` would reject fails here with the same error.
//! * `cairn expand [--env K=V]... [--words] -- WORD` expands one word with
//!   BuildKit's shell-lexer semantics (escape token `\`), seeing only the
//!   `--env` variables.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, anyhow};

/// Arguments of `cairn parse`.
#[derive(Debug, clap::Args)]
pub(crate) struct ParseArgs {
    /// Output format.
    #[arg(long, default_value = "json", value_parser = ["json"])]
    format: String,
    /// The Dockerfile (`-` reads standard input).
    path: PathBuf,
}

/// Arguments of `cairn expand`.
#[derive(Debug, clap::Args)]
pub(crate) struct ExpandArgs {
    /// A variable visible to the expansion: `K=V`, or `K=` for set but
    /// empty. Repeatable; the last one for a key wins. The process
    /// environment is never consulted.
    #[arg(long = "env", value_name = "K=V", value_parser = parse_env)]
    env: Vec<(String, String)>,
    /// Print the fields of BuildKit's word splitting, one per line, instead
    /// of the single expanded word.
    #[arg(long)]
    words: bool,
    /// The word to expand (put it after `--`).
    #[arg(allow_hyphen_values = true)]
    word: String,
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some(("", _)) => Err(format!("`{s}`: empty variable name")),
        Some((k, v)) => Ok((k.to_string(), v.to_string())),
        None => Err(format!("`{s}`: expected K=V (K= for an empty value)")),
    }
}

fn write_stdout(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("write to standard output")
}

/// `cairn parse`.
pub(crate) fn parse(args: ParseArgs) -> anyhow::Result<()> {
    let (name, bytes) = if args.path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
            .context("read standard input")?;
        ("-".to_string(), buf)
    } else {
        let bytes =
            std::fs::read(&args.path).with_context(|| format!("read {}", args.path.display()))?;
        (args.path.display().to_string(), bytes)
    };
    let text = String::from_utf8(bytes).map_err(|e| {
        anyhow!(
            "{name}: not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })?;
    // Same acceptance as `cairn build`; its error is the first in the file.
    cairn_dockerfile::parse(&name, &text)?;
    let nodes = cairn_dockerfile::parse_raw(&name, &text)?;
    debug_assert_eq!(args.format, "json");
    let mut json = serde_json::to_string_pretty(&nodes).context("serialise the nodes")?;
    json.push('\n');
    write_stdout(&json)
}

/// `cairn expand`.
pub(crate) fn expand(args: ExpandArgs) -> anyhow::Result<()> {
    let vars: BTreeMap<String, String> = args.env.into_iter().collect();
    let lookup = |name: &str| vars.get(name).cloned();
    let mut out = String::new();
    if args.words {
        for w in cairn_dockerfile::expand_words(&args.word, &lookup, '\\')
            .with_context(|| format!("cannot expand {:?}", args.word))?
        {
            out.push_str(&w);
            out.push('\n');
        }
    } else {
        out = cairn_dockerfile::expand_word(&args.word, &lookup, '\\')
            .with_context(|| format!("cannot expand {:?}", args.word))?;
        out.push('\n');
    }
    write_stdout(&out)
}
