//! What the Features are installed on: the image user and the base image's
//! `devcontainer.metadata` label and digest, found before anything is built.
//!
//! For an `image` config that is the image's config. For a Dockerfile config
//! the target stage (`build.target`, else the last) is read the way the
//! reference CLI reads it: its last `USER` (expanded with the stage's ARG
//! defaults, `build.args` and the stage's ENV so far) wins; without one the
//! stage it stands on is asked, down to the external image of the chain, whose
//! config gives the user, the label and the digest. A `USER` set through a
//! variable the frontend cannot know here (an ENV of a base image) stays as
//! written.

use std::collections::BTreeMap;

use cairn_dockerfile::{Dockerfile, Instruction, expand_word};

use crate::Error;

/// The part of a Dockerfile the Features stand on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DockerfileBase {
    /// How the appended stage names the target stage (its name, else its index).
    pub stage_ref: String,
    /// The last `USER` of the chain of stages, if any.
    pub user: Option<String>,
    /// The external image at the bottom of the chain (`None`: `scratch`).
    pub image: Option<String>,
}

fn unquote(default: &str) -> String {
    let t = default.trim();
    if t.len() >= 2
        && ((t.starts_with('"') && t.ends_with('"')) || (t.starts_with('\'') && t.ends_with('\'')))
    {
        t[1..t.len() - 1].to_string()
    } else {
        t.to_string()
    }
}

/// Reads the target stage of `df` (see the module doc).
pub(crate) fn dockerfile_base(
    df: &Dockerfile,
    target: Option<&str>,
    build_args: &BTreeMap<String, String>,
) -> Result<DockerfileBase, Error> {
    let usage = |m: String| Error::Usage(format!("{}: {m}", df.file_name));
    if df.stages.is_empty() {
        return Err(usage("no FROM instruction".into()));
    }
    let find = |name: &str, before: usize| {
        let lower = name.to_ascii_lowercase();
        df.stages[..before]
            .iter()
            .rev()
            .find(|s| s.name.as_deref() == Some(lower.as_str()))
            .map(|s| s.index)
            .or_else(|| name.parse::<usize>().ok().filter(|&i| i < before))
    };
    let mut index = match target {
        Some(t) => find(t, df.stages.len())
            .ok_or_else(|| usage(format!("build.target `{t}`: no such stage")))?,
        None => df.stages.len() - 1,
    };
    let stage_ref = df.stages[index]
        .name
        .clone()
        .unwrap_or_else(|| index.to_string());
    let mut global: BTreeMap<String, String> = BTreeMap::new();
    for a in &df.global_args {
        let name = a.node.name.clone();
        let value = build_args
            .get(&name)
            .cloned()
            .or_else(|| a.node.default.as_deref().map(unquote));
        if let Some(v) = value {
            global.insert(name, v);
        }
    }
    loop {
        let stage = &df.stages[index];
        let mut vars: BTreeMap<String, String> = BTreeMap::new();
        let mut user = None;
        for ins in &stage.instructions {
            match &ins.node {
                Instruction::Arg(decls) => {
                    for d in decls {
                        let v = build_args
                            .get(&d.name)
                            .cloned()
                            .or_else(|| d.default.as_deref().map(unquote))
                            .or_else(|| global.get(&d.name).cloned());
                        if let Some(v) = v {
                            vars.insert(d.name.clone(), v);
                        }
                    }
                }
                Instruction::Env(pairs) => {
                    for (k, v) in pairs {
                        let v = expand_word(v, &|k| vars.get(k).cloned(), df.escape)
                            .unwrap_or_else(|_| v.clone());
                        vars.insert(k.clone(), v);
                    }
                }
                Instruction::User(u) => {
                    user = Some(
                        expand_word(u, &|k| vars.get(k).cloned(), df.escape)
                            .unwrap_or_else(|_| u.clone()),
                    );
                }
                _ => {}
            }
        }
        if user.is_some() {
            let base = DockerfileBase {
                stage_ref,
                user,
                image: None,
            };
            return Ok(with_image(df, index, &global, base, &find));
        }
        let from = expand_word(
            &stage.from.node.image,
            &|k| global.get(k).cloned(),
            df.escape,
        )
        .unwrap_or_else(|_| stage.from.node.image.clone());
        match find(&from, index) {
            Some(dep) => index = dep,
            None => {
                return Ok(DockerfileBase {
                    stage_ref,
                    user: None,
                    image: (from != "scratch").then_some(from),
                });
            }
        }
    }
}

/// Fills in the external image at the bottom of the chain from stage `index`.
fn with_image(
    df: &Dockerfile,
    mut index: usize,
    global: &BTreeMap<String, String>,
    mut base: DockerfileBase,
    find: &dyn Fn(&str, usize) -> Option<usize>,
) -> DockerfileBase {
    loop {
        let image = &df.stages[index].from.node.image;
        let from = expand_word(image, &|k| global.get(k).cloned(), df.escape)
            .unwrap_or_else(|_| image.clone());
        match find(&from, index) {
            Some(dep) => index = dep,
            None => {
                base.image = (from != "scratch").then_some(from);
                return base;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(text: &str, target: Option<&str>, args: &[(&str, &str)]) -> DockerfileBase {
        let df = cairn_dockerfile::parse("Dockerfile", text).unwrap();
        let args = args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        dockerfile_base(&df, target, &args).unwrap()
    }

    #[test]
    fn last_user_of_the_target_stage_wins() {
        let b = base(
            "ARG BASE=reg/a:1\nFROM $BASE AS one\nUSER nobody\nFROM one\nARG WHO=dev\nENV HOME_USER=${WHO}\nUSER ${HOME_USER}\n",
            None,
            &[],
        );
        assert_eq!(b.stage_ref, "1");
        assert_eq!(b.user.as_deref(), Some("dev"));
        assert_eq!(b.image.as_deref(), Some("reg/a:1"));
        let b = base(
            "ARG BASE=reg/a:1\nFROM $BASE AS one\nUSER nobody\nFROM one\nARG WHO=dev\nUSER $WHO\n",
            None,
            &[("WHO", "alice"), ("BASE", "reg/b:2")],
        );
        assert_eq!(b.user.as_deref(), Some("alice"));
        assert_eq!(b.image.as_deref(), Some("reg/b:2"));
    }

    #[test]
    fn without_user_the_chain_is_followed_to_its_image() {
        let b = base(
            "FROM reg/a AS base\nUSER app\nFROM base AS dev\nRUN true\nFROM scratch AS other\n",
            Some("dev"),
            &[],
        );
        assert_eq!(b.stage_ref, "dev");
        assert_eq!(b.user.as_deref(), Some("app"));
        assert_eq!(b.image.as_deref(), Some("reg/a"));
        let b = base("FROM reg/a AS base\nFROM base\nRUN true\n", None, &[]);
        assert_eq!((b.user, b.image.as_deref()), (None, Some("reg/a")));
        let df = cairn_dockerfile::parse("Dockerfile", "FROM a\n").unwrap();
        let err = dockerfile_base(&df, Some("nope"), &BTreeMap::new()).unwrap_err();
        assert!(err.to_string().contains("build.target `nope`"), "{err}");
    }
}
