//! `.dockerignore` with Docker's semantics (moby/patternmatcher): patterns are
//! cleaned paths relative to the context root, `*`, `?`, `[...]` match within one
//! component, `**` any number of components, `!` re-includes, the last matching
//! pattern wins, and a path is matched when it or any of its parents is.

use std::path::Path;

use crate::stage::wildcard;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    parts: Vec<String>,
    exclusion: bool,
}

/// A parsed `.dockerignore`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerIgnore {
    patterns: Vec<Pattern>,
}

fn clean(p: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c.to_string()),
        }
    }
    out
}

fn match_parts(p: &[String], s: &[&str]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((first, rest)) if first == "**" => (0..=s.len()).any(|i| match_parts(rest, &s[i..])),
        Some((first, rest)) => !s.is_empty() && wildcard(first, s[0]) && match_parts(rest, &s[1..]),
    }
}

impl DockerIgnore {
    /// Parses the file's text.
    pub fn parse(text: &str) -> DockerIgnore {
        let patterns = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| {
                let (exclusion, body) = match l.strip_prefix('!') {
                    Some(b) => (true, b.trim()),
                    None => (false, l),
                };
                let parts = clean(body);
                (!parts.is_empty()).then_some(Pattern { parts, exclusion })
            })
            .collect();
        DockerIgnore { patterns }
    }

    /// Reads `<dockerfile>.dockerignore` next to the Dockerfile if present, else
    /// `<context>/.dockerignore`, else nothing.
    pub fn load(dockerfile: &Path, context: &Path) -> std::io::Result<DockerIgnore> {
        let mut beside = dockerfile.as_os_str().to_owned();
        beside.push(".dockerignore");
        for p in [Path::new(&beside), &context.join(".dockerignore")] {
            match std::fs::read_to_string(p) {
                Ok(t) => return Ok(DockerIgnore::parse(&t)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(DockerIgnore::default())
    }

    /// Whether any pattern re-includes (then an excluded directory must still be
    /// walked: something below it may come back).
    pub fn has_exclusions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }

    /// Whether there are no patterns.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether `rel` (relative to the context root, `/`-separated) is ignored.
    pub fn ignores(&self, rel: &str) -> bool {
        let parts: Vec<&str> = rel
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect();
        let mut matched = false;
        for p in &self.patterns {
            if p.exclusion != matched {
                // An exclusion can only change an ignored path, an inclusion only a
                // kept one.
                continue;
            }
            let hit = (1..=parts.len()).any(|n| match_parts(&p.parts, &parts[..n]));
            if hit {
                matched = !p.exclusion;
            }
        }
        matched
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Dockerfile reference's `.dockerignore` section.
    #[test]
    fn reference_example() {
        let ig = DockerIgnore::parse("# comment\n*/temp*\n*/*/temp*\ntemp?\n");
        assert!(ig.ignores("somedir/temporary.txt"));
        assert!(ig.ignores("somedir/temp"));
        assert!(ig.ignores("somedir/subdir/temporary.txt"));
        assert!(ig.ignores("tempa"));
        assert!(ig.ignores("tempb"));
        assert!(!ig.ignores("temporary.txt"));
        assert!(!ig.ignores("a/b/c/temp"));
    }

    #[test]
    fn double_star_and_exceptions_last_match_wins() {
        let ig = DockerIgnore::parse("**/*.go\n*.md\n!README*.md\nREADME-secret.md\n");
        assert!(ig.ignores("main.go"));
        assert!(ig.ignores("a/b/c.go"));
        assert!(ig.ignores("CHANGES.md"));
        assert!(!ig.ignores("README.md"));
        assert!(ig.ignores("README-secret.md"));
        assert!(
            !ig.ignores("docs/CHANGES.md"),
            "*.md is anchored at the root"
        );
    }

    #[test]
    fn parents_match_and_paths_are_cleaned() {
        let ig = DockerIgnore::parse("/node_modules\n./build/\n");
        assert!(ig.ignores("node_modules"));
        assert!(ig.ignores("node_modules/x/y.js"));
        assert!(ig.ignores("build/out.o"));
        assert!(!ig.ignores("src/node_modules"));
        let re = DockerIgnore::parse("docs\n!docs/keep.md\n");
        assert!(!ig.has_exclusions() && re.has_exclusions());
        assert!(re.ignores("docs/other.md"));
        assert!(!re.ignores("docs/keep.md"));
    }
}
