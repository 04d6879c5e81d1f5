//! `cairn unpack`: an image with every kind of layer change, unpacked from the
//! registry and from an OCI layout, equals `umoci unpack` of the same image (a
//! tree comparison: paths, types, modes, owners, sizes, contents, symlink targets,
//! hardlink groups); its env file sourced by `sh`; bad inputs leave nothing behind.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;

/// Four RUN layers over busybox: files, directories, relative and absolute
/// symlinks, a hardlink, a file deleted and a directory removed (whiteouts), a
/// directory replaced (opaque), setuid/sticky/private modes, other owners; then
/// ENV values with spaces, quotes and shell syntax, WORKDIR and USER.
const DOCKERFILE: &str = r#"ARG BASE
FROM ${BASE}
RUN mkdir -p /data/keep /data/opaque/sub /data/gone && echo a > /data/keep/a \
 && echo old > /data/opaque/old && echo deep > /data/opaque/sub/deep \
 && echo x > /data/gone/x && echo bye > /etc/deleteme && echo v1 > /data/changed \
 && ln -s ../keep/a /data/rel-link && ln -s /etc/passwd /data/abs-link \
 && ln -s /nowhere /data/dangling && ln /data/keep/a /data/keep/hard \
 && head -c 300000 /dev/urandom > /data/random.bin && : > /data/empty
RUN rm /etc/deleteme && rm -rf /data/gone /data/opaque && mkdir /data/opaque \
 && echo new > /data/opaque/new && echo v2 > /data/changed
RUN mkdir -m 1777 /data/sticky && echo secret > /data/secret && chmod 0600 /data/secret \
 && chown 1000:1000 /data/secret && chown -R 33:33 /data/keep && cp /bin/busybox /data/suid \
 && chmod 4755 /data/suid && chmod 0750 /data/opaque && chown 0:33 /data/opaque
RUN rm /data/rel-link && ln -s keep/hard /data/rel-link && echo more >> /data/keep/a \
 && mkdir /data/hl && echo linked > /data/hl/one && ln /data/hl/one /data/hl/two
ENV A="two words" B="it's \"quoted\"" C='$HOME `id` \n ; done'
WORKDIR /work dir
USER 1000:1000
"#;

/// One entry of a tree, as compared.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    kind: &'static str,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    /// File content (the images are small) or symlink target.
    data: Vec<u8>,
}

/// A tree: entries by path (relative, the root as ""), and hardlink groups (paths
/// sharing an inode, sorted).
struct Tree {
    entries: BTreeMap<String, Entry>,
    links: Vec<Vec<String>>,
}

/// Walks `root`, leaving out the top-level names in `skip`.
fn tree(root: &Path, skip: &[&str]) -> Tree {
    let mut entries = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), Vec<String>> = BTreeMap::new();
    let mut todo = vec![(root.to_path_buf(), String::new())];
    while let Some((path, rel)) = todo.pop() {
        let m = std::fs::symlink_metadata(&path).unwrap();
        let ft = m.file_type();
        let (kind, data) = if ft.is_symlink() {
            let t = std::fs::read_link(&path).unwrap();
            ("symlink", t.into_os_string().into_encoded_bytes())
        } else if ft.is_dir() {
            for e in std::fs::read_dir(&path).unwrap() {
                let e = e.unwrap();
                let name = e.file_name().to_string_lossy().to_string();
                if rel.is_empty() && skip.contains(&name.as_str()) {
                    continue;
                }
                let child = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                todo.push((e.path(), child));
            }
            ("dir", Vec::new())
        } else if ft.is_file() {
            if m.nlink() > 1 {
                inodes
                    .entry((m.dev(), m.ino()))
                    .or_default()
                    .push(rel.clone());
            }
            ("file", std::fs::read(&path).unwrap())
        } else {
            ("special", Vec::new())
        };
        let size = if kind == "file" { m.len() } else { 0 };
        entries.insert(
            rel,
            Entry {
                kind,
                mode: m.mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
                size,
                data,
            },
        );
    }
    let mut links: Vec<Vec<String>> = inodes
        .into_values()
        .filter(|g| g.len() > 1)
        .map(|mut g| {
            g.sort();
            g
        })
        .collect();
    links.sort();
    Tree { entries, links }
}

/// Asserts two trees are equal, listing every difference; owners only if `owners`.
fn assert_same_tree(what: &str, got: &Tree, want: &Tree, owners: bool) {
    let mut diffs = Vec::new();
    for (p, w) in &want.entries {
        match got.entries.get(p) {
            None => diffs.push(format!("missing: /{p} ({})", w.kind)),
            Some(g) => {
                let mut g = g.clone();
                let mut w = w.clone();
                if !owners {
                    (g.uid, g.gid, w.uid, w.gid) = (0, 0, 0, 0);
                }
                if g != w {
                    let show = |e: &Entry| {
                        format!(
                            "{} mode {:o} owner {}:{} size {} data {}",
                            e.kind,
                            e.mode,
                            e.uid,
                            e.gid,
                            e.size,
                            if e.data.len() <= 64 {
                                format!("{:?}", String::from_utf8_lossy(&e.data))
                            } else {
                                format!("{} bytes", e.data.len())
                            }
                        )
                    };
                    diffs.push(format!("/{p}: got {} want {}", show(&g), show(&w)));
                }
            }
        }
    }
    for p in got.entries.keys() {
        if !want.entries.contains_key(p) {
            diffs.push(format!("extra: /{p}"));
        }
    }
    if got.links != want.links {
        diffs.push(format!(
            "hardlinks: got {:?} want {:?}",
            got.links, want.links
        ));
    }
    assert!(
        diffs.is_empty(),
        "{what}: {} differences from umoci:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}

fn umoci_available() -> bool {
    Command::new("umoci").arg("--version").output().is_ok()
}

/// `umoci unpack` of `layout:tag`; as root it keeps owners (no `--rootless`).
fn umoci_rootfs(layout: &Path, tag: &str, work: &Path) -> PathBuf {
    let bundle = work.join("umoci-bundle");
    let mut c = Command::new("umoci");
    c.arg("unpack");
    if !is_root() {
        c.arg("--rootless");
    }
    run_ok(
        c.arg("--image")
            .arg(format!("{}:{tag}", layout.display()))
            .arg(&bundle),
    );
    bundle.join("rootfs")
}

fn unpack_cmd(args: &[&std::ffi::OsStr], state: &Path) -> Command {
    let mut c = Command::new(cairn_bin());
    c.arg("unpack").args(args).arg("--state-dir").arg(state);
    c
}

/// Builds [`DOCKERFILE`], pushes it as `unpack/mixed:v1` and writes it as an OCI
/// layout; returns (image, digest, layout).
fn build_mixed(env: &Env) -> (String, String, PathBuf) {
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), DOCKERFILE).unwrap();
    let image = env.image("unpack/mixed:v1");
    let layout = env.path("layout");
    let out = run_ok(
        Command::new(cairn_bin())
            .arg("build")
            .arg(&ctx)
            .args(["--build-arg", &format!("BASE={}", env.base)])
            .args(["-t", &image, "--push"])
            .arg("--output")
            .arg(format!("type=oci,dest={}", layout.display()))
            .arg("--state-dir")
            .arg(env.path("build-state")),
    );
    (image, digest_of(&out), layout)
}

/// The image unpacked from the registry (default env file) and from the OCI
/// layout (into a non-empty directory, env file elsewhere) equals umoci's unpack;
/// the env file, sourced by sh, gives back the exact values.
#[test]
fn unpack_from_registry_and_layout_equals_umoci() {
    if !umoci_available() {
        eprintln!("skipped: umoci is not installed (apt-get install umoci)");
        return;
    }
    let env = Env::new();
    let (image, digest, layout) = build_mixed(&env);
    let layers = layout_manifest(&layout)["layers"].as_array().unwrap().len();
    assert!(layers >= 5, "busybox + 4 RUN layers, got {layers}");
    let want = tree(&umoci_rootfs(&layout, "v1", &env.path("umoci")), &[]);
    // The image really has what the comparison is meant to cover.
    let e = &want.entries;
    assert!(!e.contains_key("etc/deleteme") && !e.contains_key("data/gone"));
    assert!(!e.contains_key("data/opaque/old") && e.contains_key("data/opaque/new"));
    assert_eq!(e["data/suid"].mode, 0o4755);
    assert_eq!(e["data/sticky"].mode, 0o1777);
    // (keep/a and keep/hard were linked in layer 1, but changing them later copied
    // each up on its own: overlayfs breaks the link, as in any overlay builder.)
    assert_eq!(want.links, [["data/hl/one", "data/hl/two"]]);
    if is_root() {
        assert_eq!((e["data/secret"].uid, e["data/secret"].gid), (1000, 1000));
        assert_eq!(e["data/keep/a"].uid, 33);
    }

    // From the registry, into a directory that does not exist yet.
    let from_reg = env.path("dest/from-registry");
    let out = run_ok(&mut unpack_cmd(
        &[image.as_ref(), from_reg.as_ref()],
        &env.path("state"),
    ));
    assert_eq!(out.trim(), digest);
    assert_same_tree(
        "from the registry",
        &tree(&from_reg, &[".cairn-image.env"]),
        &want,
        is_root(),
    );
    let env_file = from_reg.join(".cairn-image.env");
    assert!(env_file.is_file(), "default env file missing");

    // From the layout, into a directory with content of its own.
    let from_oci = env.path("from-oci");
    std::fs::create_dir_all(from_oci.join("keep-me")).unwrap();
    std::fs::write(from_oci.join("keep-me/file"), "mine").unwrap();
    let env_file2 = env.path("oci.env");
    let src = format!("oci:{}:v1", layout.display());
    let out = run_ok(
        unpack_cmd(&[src.as_ref(), from_oci.as_ref()], &env.path("state2"))
            .arg("--env-file")
            .arg(&env_file2),
    );
    assert_eq!(out.trim(), digest);
    assert_same_tree(
        "from the OCI layout",
        &tree(&from_oci, &["keep-me"]),
        &want,
        is_root(),
    );
    assert_eq!(read(&from_oci.join("keep-me/file")), "mine");
    // Again into the same, now complete, directory: every layer applies on top of
    // itself (files replaced, whiteouts of what is already gone) to the same tree.
    run_ok(
        unpack_cmd(&[src.as_ref(), from_oci.as_ref()], &env.path("state2"))
            .arg("--env-file")
            .arg(&env_file2),
    );
    assert_same_tree(
        "from the OCI layout, twice",
        &tree(&from_oci, &["keep-me"]),
        &want,
        is_root(),
    );
    assert!(!from_oci.join(".cairn-image.env").exists());
    assert_eq!(read(&env_file), read(&env_file2).replace(&src, &image));
    // The layout is read in place: the unpack left no blob in its state dir.
    let state2_blobs = env.path("state2/content-v1/blobs/sha256");
    assert!(
        !state2_blobs.exists() || std::fs::read_dir(&state2_blobs).unwrap().next().is_none(),
        "layout blobs were copied into the state dir"
    );

    // Sourced by sh: the exact values; WORKDIR and USER set but not exported.
    let out = run_ok(Command::new("sh").arg("-c").arg(
        r#"set -eu; . "$1"; printf '%s|' "$A" "$B" "$C" "$CAIRN_IMAGE_WORKDIR" "$CAIRN_IMAGE_USER" "${PATH%%:*}"; env | grep -c '^CAIRN_IMAGE_' || true"#,
    ).arg("sh").arg(&env_file2));
    assert_eq!(
        out,
        "two words|it's \"quoted\"|$HOME `id` \\n ; done|/work dir|1000:1000|/usr/local/sbin|0\n"
    );
}

/// An unknown image, an unknown tag, a missing layout and a corrupt layer blob
/// fail naming the cause; nothing is created outside DEST (no env file), and DEST
/// itself is not created when the image cannot be resolved.
#[test]
fn unpack_of_bad_input_fails_clearly_and_leaves_nothing() {
    let env = Env::new();
    let layout = env.path("layout");
    run_ok(
        build_cmd(&env, "basic", &env.path("build-state"))
            .args(["-t", &env.image("unpack/basic:v1")])
            .arg("--output")
            .arg(format!("type=oci,dest={}", layout.display())),
    );
    let dest = env.path("dest");
    let env_file = env.path("out.env");
    let fail = |image: &str, needles: &[&str]| {
        let out = run(
            unpack_cmd(&[image.as_ref(), dest.as_ref()], &env.path("state"))
                .arg("--env-file")
                .arg(&env_file),
        );
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success(), "{image}: unpack succeeded");
        for n in needles {
            assert!(stderr.contains(n), "{image}: `{n}` not in:\n{stderr}");
        }
        assert!(!env_file.exists(), "{image}: env file written");
        stderr
    };
    let unknown = env.image("unpack/nothing:here");
    fail(&unknown, &[unknown.as_str(), "manifest unknown"]);
    assert!(!dest.exists(), "DEST created for an unknown image");
    fail(
        &format!("oci:{}:nope", layout.display()),
        &["no image tagged `nope`", "tags: v1"],
    );
    fail(
        &format!("oci:{}", env.path("no-layout").display()),
        &["is not an OCI image layout", "index.json"],
    );
    assert!(!dest.exists(), "DEST created for an unresolvable image");
    // Corrupt the top layer's blob (same size, one byte changed).
    let manifest = layout_manifest(&layout);
    let top = manifest["layers"].as_array().unwrap().last().unwrap()["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let blob = layout.join("blobs/sha256").join(&top);
    let mut bytes = std::fs::read(&blob).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::remove_file(&blob).unwrap(); // may be a hardlink into the build's store
    std::fs::write(&blob, &bytes).unwrap();
    fail(
        &format!("oci:{}:v1", layout.display()),
        &["is corrupt", &top],
    );
    let leftovers: Vec<String> = std::fs::read_dir(env.tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.contains("env"))
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
    // A destination that is a file is refused before anything is written.
    std::fs::remove_dir_all(&dest).ok();
    std::fs::write(&dest, "a file").unwrap();
    let stderr = fail(
        &format!("oci:{}:v1", layout.display()),
        &["not a directory"],
    );
    assert!(stderr.contains(dest.to_str().unwrap()), "{stderr}");
}

/// The test user's uid, gid and first subordinate uid (from /etc/subuid).
fn rootless_ids() -> (u32, u32, u32) {
    let id = |flag: &str| -> u32 {
        run_ok(Command::new("id").args([flag, "cairn-rootless"]))
            .trim()
            .parse()
            .unwrap()
    };
    let subuid = read(Path::new("/etc/subuid"));
    let start = subuid
        .lines()
        .find_map(|l| l.strip_prefix("cairn-rootless:"))
        .and_then(|r| r.split(':').next()?.parse().ok())
        .expect("cairn-rootless has a subordinate uid range");
    (id("-u"), id("-g"), start)
}

/// As an ordinary user (the test user `cairn-rootless`, with subordinate ids),
/// `cairn unpack` keeps every owner: image id 0 is the user, image id N is the
/// user's N-th subordinate id; with ids mapped back the tree equals umoci's (as root).
#[test]
fn ordinary_user_unpack_keeps_owners_as_subordinate_ids() {
    if !is_root() || !umoci_available() {
        eprintln!("skipped: needs root (to act as the test user) and umoci");
        return;
    }
    let env = Env::new();
    let (_, digest, layout) = build_mixed(&env);
    let want = tree(&umoci_rootfs(&layout, "v1", &env.path("umoci")), &[]);
    // Creates the test user, its home `user/` and a copy of cairn there.
    let built = run_as_user(&env, "basic", &[]);
    assert!(built.status.success(), "{built:?}");
    let (uid, gid, start) = rootless_ids();
    let home = env.path("user");
    run_ok(
        Command::new("cp")
            .arg("-a")
            .arg(&layout)
            .arg(home.join("layout")),
    );
    run_ok(
        Command::new("chown")
            .arg("-R")
            .arg(format!("{uid}:{gid}"))
            .arg(home.join("layout")),
    );
    let dest = home.join("dest");
    let out = run_ok(
        Command::new("setpriv")
            .args([
                &format!("--reuid={uid}"),
                &format!("--regid={gid}"),
                "--clear-groups",
                "--reset-env",
            ])
            .arg(home.join("cairn"))
            .arg("unpack")
            .arg(format!("oci:{}:v1", home.join("layout").display()))
            .arg(&dest)
            .arg("--state-dir")
            .arg(home.join("unpack-state"))
            .env("HOME", &home),
    );
    assert_eq!(out.trim(), digest);
    let mut got = tree(&dest, &[".cairn-image.env"]);
    let back = |host: u32| -> u32 {
        match host {
            h if h == uid || h == gid => 0,
            h if (start..start + 65536).contains(&h) => h - start + 1,
            h => panic!("host id {h} is neither the user nor a subordinate id"),
        }
    };
    assert_eq!(got.entries["data/secret"].uid, start + 999, "uid 1000");
    assert_eq!(got.entries["data/keep/a"].uid, start + 32, "uid 33");
    assert_eq!(got.entries["bin"].uid, uid, "uid 0");
    for e in got.entries.values_mut() {
        (e.uid, e.gid) = (back(e.uid), back(e.gid));
    }
    assert_same_tree("unpacked by an ordinary user", &got, &want, true);
    let env_meta = std::fs::metadata(dest.join(".cairn-image.env")).unwrap();
    assert_eq!(env_meta.uid(), uid, "the env file belongs to the user");
}
