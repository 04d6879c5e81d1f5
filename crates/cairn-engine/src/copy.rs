//! COPY and ADD: resolving sources (the context with `.dockerignore` and
//! `--exclude`, another stage or image, URLs, local archives, heredocs) into the
//! inputs and copy plan of one sandboxed step.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use cairn_dockerfile::Heredoc;
use cairn_sandbox::{
    Action, CopySource, CopySpec, INPUT_ROOT, InlineFile, Input, InputSource, Network,
};

use crate::Error;
use crate::dockerignore::DockerIgnore;
use crate::fetch;
use crate::stage::{Build, Site, StageState, clean_abs, context_relative, wildcard};

/// ADD-only options.
#[derive(Debug, Clone)]
pub(crate) struct AddOptions {
    pub checksum: Option<String>,
}

/// A COPY or ADD, expanded.
#[derive(Debug, Clone)]
pub(crate) struct CopyRequest {
    pub sources: Vec<String>,
    pub dest: String,
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub heredocs: Vec<Heredoc>,
    pub exclude: Vec<String>,
    pub parents: bool,
    /// `Some` for ADD.
    pub add: Option<AddOptions>,
}

fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Names in `dir` of the merged view of `layers` (topmost first): the union of
/// the layers' entries, less overlay whiteouts, stopping at opaque directories.
fn merged_names(layers: &[PathBuf], dir: &str) -> Vec<String> {
    use std::os::unix::fs::FileTypeExt;
    let mut seen: HashMap<String, bool> = HashMap::new();
    for l in layers {
        let d = l.join(dir);
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let whiteout = e
                .metadata()
                .map(|m| {
                    use std::os::unix::fs::MetadataExt;
                    m.file_type().is_char_device() && m.rdev() == 0
                })
                .unwrap_or(false);
            seen.entry(name).or_insert(!whiteout);
        }
        let opaque = ["user.overlay.opaque", "trusted.overlay.opaque"]
            .iter()
            .any(|k| xattr::get(&d, k).ok().flatten().as_deref() == Some(b"y"));
        if opaque {
            break;
        }
    }
    let mut names: Vec<String> = seen
        .into_iter()
        .filter(|(_, v)| *v)
        .map(|(k, _)| k)
        .collect();
    names.sort();
    names
}

/// Expands a wildcard path against a directory lister, component by component.
fn glob(rel: &str, list: &dyn Fn(&str) -> Vec<String>) -> Vec<String> {
    let mut found = vec![String::new()];
    for part in rel.split('/') {
        let mut next = Vec::new();
        for base in &found {
            let names = if has_wildcard(part) {
                list(if base.is_empty() { "." } else { base })
                    .into_iter()
                    .filter(|n| wildcard(part, n))
                    .collect()
            } else {
                vec![part.to_string()]
            };
            for n in names {
                next.push(if base.is_empty() {
                    n
                } else {
                    format!("{base}/{n}")
                });
            }
        }
        found = next;
    }
    found
}

impl Build<'_> {
    /// Runs a COPY or ADD as one sandboxed step.
    pub(crate) async fn copy(
        &self,
        st: &mut StageState,
        site: &Site,
        req: CopyRequest,
        done: &HashMap<usize, StageState>,
    ) -> Result<(), Error> {
        let kw = if req.add.is_some() { "ADD" } else { "COPY" };
        // --parents keeps each source's path (relative to the context or stage root).
        let under = |rel: &str, is_dir: bool| -> Option<String> {
            if !req.parents {
                return None;
            }
            let p = Path::new(rel);
            let keep = if is_dir { Some(p) } else { p.parent() };
            Some(
                keep.map(|k| k.to_string_lossy().to_string())
                    .unwrap_or_default(),
            )
            .map(|u| if u == "." { String::new() } else { u })
        };
        let chmod = match &req.chmod {
            Some(m) => Some(u32::from_str_radix(m, 8).map_err(|_| {
                self.err_at(
                    site.line,
                    format!("invalid --chmod value `{m}` (octal expected)"),
                )
            })?),
            None => None,
        };
        let mut dest = clean_abs(&Self::workdir(st), &req.dest);
        if req.dest.ends_with('/') && dest != "/" {
            dest.push('/');
        }
        let inline: Vec<InlineFile> = req
            .heredocs
            .iter()
            .map(|h| InlineFile {
                name: h.name.clone(),
                content: h.chomped(),
            })
            .collect();
        let material = self.copy_material(site, kw, &req, &dest, done).await?;
        let mut shown: Vec<String> = req.sources.clone();
        shown.extend(req.heredocs.iter().map(|h| format!("<<{}", h.name)));
        let from_text = req
            .from
            .as_ref()
            .map(|f| format!("--from={f} "))
            .unwrap_or_default();
        let h = self.history(format!(
            "{kw} {from_text}{} {} # buildkit",
            shown.join(" "),
            req.dest
        ));
        if st.planning {
            let placeholder = Action::Mkdir { path: "/".into() };
            return self
                .step(st, site, placeholder, Network::None, vec![], h, material)
                .await;
        }
        let mut inputs: Vec<Input> = Vec::new();
        let mut sources: Vec<CopySource> = Vec::new();
        let mut skip: Vec<String> = Vec::new();
        let root = format!("{INPUT_ROOT}/0");
        let mut extra = 0;
        let mut next_target = || {
            extra += 1;
            format!("{INPUT_ROOT}/{extra}")
        };
        if let Some(from) = &req.from {
            let layers = self
                .source_layers(site.stage, from, done, site.line)
                .await?;
            for src in &req.sources {
                let rel = context_relative(src).expect("absolute paths stay inside `/`");
                let rels = if has_wildcard(&rel) {
                    glob(&rel, &|d| merged_names(&layers, d))
                } else {
                    vec![rel]
                };
                if rels.is_empty() {
                    return Err(self.err_at(
                        site.line,
                        format!("{kw} source `{src}` matches nothing in `{from}`"),
                    ));
                }
                for r in rels {
                    let is_dir = layers
                        .iter()
                        .find_map(|l| std::fs::symlink_metadata(l.join(&r)).ok())
                        .is_some_and(|m| m.is_dir());
                    sources.push(CopySource {
                        path: format!("{root}/{r}"),
                        keep_owner: false,
                        under: under(&r, is_dir),
                    });
                }
            }
            inputs.push(Input {
                source: InputSource::Layers(layers),
                subpath: None,
                target: root.clone(),
                is_file: false,
                readonly: true,
            });
        } else {
            let mut context_used = false;
            let checksum = req.add.as_ref().and_then(|a| a.checksum.clone());
            for src in &req.sources {
                if req.add.is_some() && is_url(src) {
                    let name = fetch::url_file_name(src).ok_or_else(|| {
                        self.err_at(site.line, format!("ADD {src}: the URL names no file"))
                    })?;
                    let file = self.download(site, src, checksum.as_deref()).await?;
                    let dir = file
                        .parent()
                        .expect("downloads live in a dir")
                        .to_path_buf();
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                        .map_err(|e| Error::io("chmod", &file, e))?;
                    let target = next_target();
                    sources.push(CopySource {
                        path: format!("{target}/{name}"),
                        keep_owner: false,
                        under: None,
                    });
                    inputs.push(Input {
                        source: InputSource::Host(dir),
                        subpath: None,
                        target,
                        is_file: false,
                        readonly: true,
                    });
                    continue;
                }
                if checksum.is_some() {
                    return Err(
                        self.err_at(site.line, "ADD --checksum applies to URL sources only")
                    );
                }
                if is_url(src) {
                    return Err(
                        self.err_at(site.line, format!("COPY cannot fetch `{src}`: use ADD"))
                    );
                }
                for rel in self.context_sources(site, kw, src)? {
                    let host = self.context.join(&rel);
                    let archive = match req.add {
                        Some(_) if host.is_file() => fetch::sniff_archive(&host),
                        _ => None,
                    };
                    if let Some(kind) = archive {
                        let dir = self.scratch_dir("extract")?;
                        let out = tokio::task::block_in_place(|| {
                            fetch::extract(&host, kind, &dir.join("root"))
                        })
                        .map_err(|e| self.err_at(site.line, e.to_string()))?;
                        let target = next_target();
                        sources.push(CopySource {
                            path: target.clone(),
                            keep_owner: true,
                            under: None,
                        });
                        inputs.push(Input {
                            source: InputSource::Host(out),
                            subpath: None,
                            target,
                            is_file: false,
                            readonly: true,
                        });
                    } else {
                        context_used = true;
                        skip.extend(self.skip_list(&rel, &req.exclude, &root));
                        sources.push(CopySource {
                            path: if rel == "." {
                                root.clone()
                            } else {
                                format!("{root}/{rel}")
                            },
                            keep_owner: false,
                            under: under(&rel, host.is_dir()),
                        });
                    }
                }
            }
            if context_used {
                inputs.push(Input {
                    source: InputSource::Host(self.context.clone()),
                    subpath: None,
                    target: root.clone(),
                    is_file: false,
                    readonly: true,
                });
            }
        }
        let mut shown: Vec<String> = req.sources.clone();
        shown.extend(req.heredocs.iter().map(|h| format!("<<{}", h.name)));
        let from = req
            .from
            .as_ref()
            .map(|f| format!("--from={f} "))
            .unwrap_or_default();
        let h = self.history(format!(
            "{kw} {from}{} {} # buildkit",
            shown.join(" "),
            req.dest
        ));
        let spec = CopySpec {
            sources,
            skip,
            inline,
            dest,
            chown: req.chown.clone(),
            chmod,
        };
        self.step(
            st,
            site,
            Action::Copy(spec),
            Network::None,
            inputs,
            h,
            material,
        )
        .await
    }

    /// Downloads an ADD URL once per build (the planning pass needs its digest).
    async fn download(
        &self,
        site: &Site,
        url: &str,
        checksum: Option<&str>,
    ) -> Result<PathBuf, Error> {
        let mut memo = self.downloads.lock().await;
        if let Some(p) = memo.get(url) {
            return Ok(p.clone());
        }
        let name = fetch::url_file_name(url)
            .ok_or_else(|| self.err_at(site.line, format!("ADD {url}: the URL names no file")))?;
        let dir = self.scratch_dir("download")?;
        let file = dir.join(&name);
        fetch::download(&self.http, url, checksum, &file)
            .await
            .map_err(|e| self.err_at(site.line, e.to_string()))?;
        memo.insert(url.to_string(), file.clone());
        Ok(file)
    }

    /// What the cache key takes from a COPY/ADD: destination, flags, and the
    /// content digest of exactly the selected sources (after `.dockerignore` and
    /// `--exclude`), or the identity of the `--from` stage/image.
    async fn copy_material(
        &self,
        site: &Site,
        kw: &str,
        req: &CopyRequest,
        dest: &str,
        done: &HashMap<usize, StageState>,
    ) -> Result<serde_json::Value, Error> {
        use sha2::Digest as _;
        let mut sources = Vec::new();
        let from = match &req.from {
            Some(f) => Some(self.source_identity(site.stage, f, done, site.line).await?),
            None => None,
        };
        for src in &req.sources {
            let digest = if from.is_some() {
                None
            } else if req.add.is_some() && is_url(src) {
                let checksum = req.add.as_ref().and_then(|a| a.checksum.clone());
                let file = self.download(site, src, checksum.as_deref()).await?;
                Some(
                    crate::keys::tree_digest(file.parent().unwrap_or(&file), ".", &|_| false)
                        .map_err(|e| Error::io("hash", &file, e))?,
                )
            } else {
                let ex = DockerIgnore::parse(&req.exclude.join("\n"));
                let mut parts = Vec::new();
                for rel in self.context_sources(site, kw, src)? {
                    let ignore = &self.ignore;
                    let prefix = if rel == "." {
                        String::new()
                    } else {
                        format!("{rel}/")
                    };
                    let skipped = |p: &str| {
                        ignore.ignores(p) || ex.ignores(p.strip_prefix(&prefix).unwrap_or(p))
                    };
                    let d = crate::keys::tree_digest(&self.context, &rel, &skipped)
                        .map_err(|e| self.err_at(site.line, format!("{kw} source `{rel}`: {e}")))?;
                    parts.push(format!("{rel}={d}"));
                }
                Some(parts.join(","))
            };
            sources.push(serde_json::json!({ "src": src, "digest": digest }));
        }
        let inline: Vec<serde_json::Value> = req
            .heredocs
            .iter()
            .map(|h| {
                serde_json::json!({
                    "name": h.name,
                    "sha256": hex::encode(sha2::Sha256::digest(h.chomped().as_bytes())),
                })
            })
            .collect();
        Ok(serde_json::json!({
            "kind": kw.to_lowercase(),
            "dest": dest,
            "chown": req.chown,
            "chmod": req.chmod,
            "from": from,
            "sources": sources,
            "inline": inline,
            "exclude": req.exclude,
            "parents": req.parents,
        }))
    }

    /// Resolves one context source (wildcards allowed) to paths relative to the
    /// context root; sources excluded by `.dockerignore` do not exist.
    fn context_sources(&self, site: &Site, kw: &str, src: &str) -> Result<Vec<String>, Error> {
        let rel = context_relative(src).ok_or_else(|| {
            self.err_at(
                site.line,
                format!("{kw} source `{src}` is outside the build context"),
            )
        })?;
        let visible = |r: &str| r == "." || !self.ignore.ignores(r);
        if !has_wildcard(&rel) {
            if std::fs::symlink_metadata(self.context.join(&rel)).is_err() || !visible(&rel) {
                return Err(self.err_at(
                    site.line,
                    format!("{kw} source `{src}` not found in the build context"),
                ));
            }
            return Ok(vec![rel]);
        }
        let list = |d: &str| -> Vec<String> {
            std::fs::read_dir(self.context.join(d))
                .map(|rd| {
                    rd.flatten()
                        .filter_map(|e| e.file_name().into_string().ok())
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut found: Vec<String> = glob(&rel, &list)
            .into_iter()
            .filter(|r| std::fs::symlink_metadata(self.context.join(r)).is_ok() && visible(r))
            .collect();
        found.sort();
        if found.is_empty() {
            return Err(self.err_at(
                site.line,
                format!("{kw} source `{src}` matches no file in the build context"),
            ));
        }
        Ok(found)
    }

    /// Sandbox paths under the context source `rel` that `.dockerignore` or
    /// `--exclude` (relative to the source) leave out.
    fn skip_list(&self, rel: &str, exclude: &[String], root: &str) -> Vec<String> {
        let ex = DockerIgnore::parse(&exclude.join("\n"));
        if self.ignore.is_empty() && ex.is_empty() {
            return vec![];
        }
        let reincludes = self.ignore.has_exclusions() || ex.has_exclusions();
        let base = self.context.join(rel);
        let mut out = Vec::new();
        let mut it = walkdir::WalkDir::new(&base).min_depth(1).into_iter();
        while let Some(Ok(e)) = it.next() {
            let Ok(inner) = e.path().strip_prefix(&base) else {
                continue;
            };
            let inner = inner.to_string_lossy().to_string();
            let in_ctx = if rel == "." {
                inner.clone()
            } else {
                format!("{rel}/{inner}")
            };
            if self.ignore.ignores(&in_ctx) || ex.ignores(&inner) {
                let is_dir = e.file_type().is_dir();
                if is_dir && reincludes {
                    continue;
                }
                out.push(format!("{root}/{in_ctx}"));
                if is_dir {
                    it.skip_current_dir();
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globbing_component_by_component() {
        let list = |d: &str| -> Vec<String> {
            match d {
                "." => vec!["a".into(), "b.txt".into(), "c.txt".into()],
                "a" => vec!["x.txt".into(), "y.md".into()],
                _ => vec![],
            }
        };
        assert_eq!(glob("*.txt", &list), ["b.txt", "c.txt"]);
        assert_eq!(glob("a/*.txt", &list), ["a/x.txt"]);
        assert_eq!(glob("?/*", &list), ["a/x.txt", "a/y.md"]);
        assert!(glob("z*", &list).is_empty());
    }
}
