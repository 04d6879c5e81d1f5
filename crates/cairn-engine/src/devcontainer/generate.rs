//! The Dockerfile a devcontainer build runs: the base (an image, or the user's
//! Dockerfile with one stage appended), then one cached step per Feature, the
//! Features' `containerEnv`, the image user restored and the
//! `devcontainer.metadata` label. Pure: text in, text out.
//!
//! Each Feature's folder (with its `devcontainer-features.env`) is a named build
//! context of its own, bind-mounted read-only into its RUN and copied to a tmpfs
//! there, so no Feature file lands in a layer (the reference CLI leaves
//! `/tmp/dev-container-features` in the image) and a step's key covers exactly its
//! own Feature's files and options: changing one Feature rebuilds from its step on.
//! The users' home directories are looked up in the image at build time, as the
//! reference CLI does, since `/etc/passwd` is only known once earlier steps ran.

use std::collections::BTreeMap;

/// Where the Feature folder is mounted in its step.
pub(crate) const MOUNT_SRC: &str = "/tmp/cairn-feature/src";
/// Where it is copied to (a tmpfs) and run from.
pub(crate) const RUN_DIR: &str = "/tmp/cairn-feature/run";
/// The name of the stage cairn appends to a user's Dockerfile.
pub(crate) const STAGE: &str = "cairn_devcontainer_features";

/// What the build starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GenBase<'a> {
    /// `FROM image`.
    Image(&'a str),
    /// The user's Dockerfile text; the appended stage starts `FROM stage_ref`
    /// (the target stage's name or index).
    Dockerfile {
        /// The text as read.
        text: &'a str,
        /// The stage the Features go on top of.
        stage_ref: String,
    },
}

/// One Feature's step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FeatureStep {
    /// The named build context holding the Feature's folder.
    pub context: String,
    /// The reference as written (for the log line).
    pub id: String,
    /// The Feature's `containerEnv`, baked in as ENV before its install runs.
    pub container_env: BTreeMap<String, String>,
}

/// Everything the generated part needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Generation<'a> {
    /// The base.
    pub base: GenBase<'a>,
    /// Features in install order.
    pub features: Vec<FeatureStep>,
    /// The image's user before the Features (restored after them); `None`/root:
    /// nothing to restore.
    pub image_user: Option<String>,
    /// The `devcontainer.metadata` label value (JSON).
    pub label: String,
    /// The Dockerfile's escape token.
    pub escape: char,
}

/// Why the text cannot be generated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum GenError {
    /// A value that no Dockerfile line can carry.
    #[error("{what}: {why}")]
    Value {
        /// Which value.
        what: String,
        /// Why.
        why: &'static str,
    },
}

/// `"value"` for a Dockerfile word: quotes and the escape token escaped, and `$`
/// too unless `expand` (a Feature's `containerEnv` is expanded, as the reference
/// CLI's `ENV` lines are: `PATH=/opt/x/bin:${PATH}`).
fn quoted(value: &str, escape: char, what: &str, expand: bool) -> Result<String, GenError> {
    if value.contains(['\n', '\r']) {
        return Err(GenError::Value {
            what: what.to_string(),
            why: "contains a line break",
        });
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || (c == '$' && !expand) || c == escape {
            out.push(escape);
        }
        out.push(c);
    }
    out.push('"');
    Ok(out)
}

fn env_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

/// The shell script a Feature's step runs (exec form, so nothing in it is
/// expanded by the Dockerfile frontend).
pub(crate) fn install_script(id: &str) -> String {
    let id = id.replace('\'', "'\\''");
    [
        "set -e".to_string(),
        format!("cp -a {MOUNT_SRC}/. {RUN_DIR}/"),
        format!("cd {RUN_DIR}"),
        "set -a".into(),
        ". ./devcontainer-features.env".into(),
        "set +a".into(),
        "home_of() { h=$( (getent passwd \"$1\" 2>/dev/null || grep -E \"^$1:|^[^:]*:[^:]*:$1:\" /etc/passwd 2>/dev/null || true) | head -n 1 | cut -d: -f6); if [ -z \"$h\" ]; then if [ \"$1\" = root ] || [ \"$1\" = 0 ]; then h=/root; else h=\"/home/$1\"; fi; fi; echo \"$h\"; }".into(),
        "_CONTAINER_USER_HOME=$(home_of \"$_CONTAINER_USER\")".into(),
        "_REMOTE_USER_HOME=$(home_of \"$_REMOTE_USER\")".into(),
        "export _CONTAINER_USER_HOME _REMOTE_USER_HOME".into(),
        "chmod +x ./install.sh".into(),
        format!("echo 'Installing Feature {id}'"),
        "./install.sh".into(),
    ]
    .join("\n")
}

/// The generated Dockerfile text, and the 1-based line of each Feature's RUN.
pub(crate) fn generate(g: &Generation<'_>) -> Result<(String, Vec<usize>), GenError> {
    let e = g.escape;
    let mut out = String::new();
    let mut run_lines = Vec::with_capacity(g.features.len());
    match &g.base {
        GenBase::Image(image) => {
            out.push_str(&format!("FROM {image}\n"));
        }
        GenBase::Dockerfile { text, stage_ref } => {
            out.push_str(text);
            if !text.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(&format!("\nFROM {stage_ref} AS {STAGE}\n"));
        }
    }
    let user = g
        .image_user
        .as_deref()
        .filter(|u| !u.is_empty() && *u != "root" && *u != "0" && !u.starts_with("root:"));
    if !g.features.is_empty() && user.is_some() {
        out.push_str("USER root\n");
    }
    for f in &g.features {
        if !f.container_env.is_empty() {
            let mut line = String::from("ENV");
            for (k, v) in &f.container_env {
                if !env_name_ok(k) {
                    return Err(GenError::Value {
                        what: format!("Feature `{}`: containerEnv `{k}`", f.id),
                        why: "is not a valid environment variable name",
                    });
                }
                line.push(' ');
                line.push_str(k);
                line.push('=');
                line.push_str(&quoted(
                    v,
                    e,
                    &format!("Feature `{}`: containerEnv `{k}`", f.id),
                    true,
                )?);
            }
            out.push_str(&line);
            out.push('\n');
        }
        let script = serde_json::to_string(&install_script(&f.id)).expect("strings serialise");
        run_lines.push(out.matches('\n').count() + 1);
        out.push_str(&format!(
            "RUN --mount=type=bind,from={},target={MOUNT_SRC} --mount=type=tmpfs,target={RUN_DIR} [\"/bin/sh\", \"-c\", {script}]\n",
            f.context
        ));
    }
    if let (false, Some(u)) = (g.features.is_empty(), user) {
        out.push_str(&format!(
            "USER {}\n",
            quoted(u, e, "the image user", false)?
        ));
    }
    out.push_str(&format!(
        "LABEL {}={}\n",
        crate::devcontainer::LABEL_NAME,
        quoted(&g.label, e, "the devcontainer.metadata label", false)?
    ));
    Ok((out, run_lines))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_dockerfile::{Instruction, parse};

    fn gen_for(base: GenBase<'_>, escape: char) -> String {
        generate(&Generation {
            base,
            features: vec![
                FeatureStep {
                    context: "cairn-feature-0".into(),
                    id: "./a".into(),
                    container_env: BTreeMap::from([
                        ("PATH".into(), "/opt/a/bin:${PATH}".into()),
                        ("QUOTE".into(), "say \"hi\" \\ `x`".into()),
                    ]),
                },
                FeatureStep {
                    context: "cairn-feature-1".into(),
                    id: "reg/ns/b:1".into(),
                    container_env: BTreeMap::new(),
                },
            ],
            image_user: Some("vscode".into()),
            label: r#"[{"id":"./a","containerEnv":{"X":"$HOME \"q\" \\"}}]"#.into(),
            escape,
        })
        .unwrap()
        .0
    }

    #[test]
    fn image_base_parses_with_one_run_per_feature() {
        let text = gen_for(GenBase::Image("reg/img:1"), '\\');
        let df = parse("gen", &text).unwrap();
        assert_eq!(df.stages.len(), 1);
        assert_eq!(df.stages[0].from.node.image, "reg/img:1");
        let kinds: Vec<&str> = df.stages[0]
            .instructions
            .iter()
            .map(|i| match &i.node {
                Instruction::User(_) => "USER",
                Instruction::Env(_) => "ENV",
                Instruction::Run(_) => "RUN",
                Instruction::Label(_) => "LABEL",
                _ => "other",
            })
            .collect();
        assert_eq!(kinds, ["USER", "ENV", "RUN", "RUN", "USER", "LABEL"]);
        let Instruction::Run(run) = &df.stages[0].instructions[2].node else {
            panic!()
        };
        assert_eq!(run.mounts.len(), 2);
        assert!(run.mounts[0].contains("from=cairn-feature-0"));
    }

    #[test]
    fn label_and_env_values_survive_the_frontend() {
        for escape in ['\\', '`'] {
            let base = if escape == '`' {
                "# escape=`\nFROM reg/base AS dev\nRUN echo hi\n"
            } else {
                "FROM reg/base AS dev\n"
            };
            let text = gen_for(
                GenBase::Dockerfile {
                    text: base,
                    stage_ref: "dev".into(),
                },
                escape,
            );
            let df = parse("gen", &text).unwrap();
            let last = df.stages.last().unwrap();
            assert_eq!(last.name.as_deref(), Some(STAGE));
            assert_eq!(last.from.node.image, "dev");
            let Instruction::Label(pairs) = &last.instructions.last().unwrap().node else {
                panic!("last is LABEL")
            };
            let value = cairn_dockerfile::expand_word(&pairs[0].1, &|_| None, escape).unwrap();
            assert_eq!(
                value, r#"[{"id":"./a","containerEnv":{"X":"$HOME \"q\" \\"}}]"#,
                "escape {escape}"
            );
            let Instruction::Env(env) = &last.instructions[1].node else {
                panic!("ENV second")
            };
            let q = env.iter().find(|(k, _)| k == "QUOTE").unwrap();
            let v = cairn_dockerfile::expand_word(&q.1, &|_| None, escape).unwrap();
            assert_eq!(v, "say \"hi\" \\ `x`", "escape {escape}");
            let p = env.iter().find(|(k, _)| k == "PATH").unwrap();
            let v = cairn_dockerfile::expand_word(
                &p.1,
                &|k| (k == "PATH").then(|| "/bin".into()),
                escape,
            )
            .unwrap();
            assert_eq!(v, "/opt/a/bin:/bin", "a Feature's ${{PATH}} is expanded");
        }
    }

    #[test]
    fn root_user_is_not_switched_and_line_breaks_are_refused() {
        let g = Generation {
            base: GenBase::Image("img"),
            features: vec![FeatureStep {
                context: "c".into(),
                id: "x".into(),
                container_env: BTreeMap::from([("A".into(), "1\n2".into())]),
            }],
            image_user: Some("root".into()),
            label: "[]".into(),
            escape: '\\',
        };
        let err = generate(&g).unwrap_err();
        assert!(err.to_string().contains("line break"), "{err}");
        let mut g = g;
        g.features[0].container_env.clear();
        let (text, lines) = generate(&g).unwrap();
        assert_eq!(
            text.lines()
                .nth(lines[0] - 1)
                .map(|l| l.starts_with("RUN ")),
            Some(true)
        );
        assert!(!text.lines().any(|l| l.starts_with("USER")), "{text}");
    }
}
