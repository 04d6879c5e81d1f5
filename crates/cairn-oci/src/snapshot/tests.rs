use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;

use rustix::fs::{AtFlags, CWD, FileType, Mode, Timespec, Timestamps};

use super::*;
use crate::write::tests::{gunzip, read_entries, try_xattr};
use crate::{ApplyOptions, apply_layer, write_layer};

/// Mtimes are kept (no clamping) so the applied tree can be compared with
/// the child's, times included.
fn opts() -> LayerOptions {
    LayerOptions {
        source_date_epoch: u64::MAX >> 2,
        ..LayerOptions::default()
    }
}

fn set_mtime(p: &Path, secs: i64) {
    let t = Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    let ts = Timestamps {
        last_access: t,
        last_modification: t,
    };
    rustix::fs::utimensat(CWD, p, &ts, AtFlags::SYMLINK_NOFOLLOW).unwrap();
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// What a tree looks like, path by path: type, mode, owner, mtime, size,
/// contents, link target, device, recorded xattrs, other paths of the inode.
fn describe(root: &Path) -> BTreeMap<String, String> {
    let mut inodes: BTreeMap<(u64, u64), Vec<String>> = BTreeMap::new();
    let mut out = BTreeMap::new();
    let walker = walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name();
    let entries: Vec<_> = walker.into_iter().map(|e| e.unwrap()).collect();
    for e in &entries {
        let m = e.metadata().unwrap();
        if !m.is_dir() && m.nlink() > 1 {
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            inodes.entry((m.dev(), m.ino())).or_default().push(rel);
        }
    }
    for e in &entries {
        let p = e.path();
        let rel = p.strip_prefix(root).unwrap().display().to_string();
        let m = e.metadata().unwrap();
        let ft = m.file_type();
        let mut d = format!(
            "mode={:o} uid={} gid={} mtime={}",
            m.mode() & 0o7777,
            m.uid(),
            m.gid(),
            m.mtime()
        );
        if ft.is_symlink() {
            d += &format!(" symlink->{}", fs::read_link(p).unwrap().display());
        } else if ft.is_dir() {
            d += " dir";
        } else if ft.is_file() {
            d += &format!(" file={:?}", String::from_utf8_lossy(&fs::read(p).unwrap()));
            let others = inodes.get(&(m.dev(), m.ino())).cloned().unwrap_or_default();
            d += &format!(" links={others:?}");
        } else {
            d += &format!(" special rdev={}", m.rdev());
        }
        d += &format!(" xattrs={:?}", recorded_xattrs(p, None).unwrap());
        out.insert(rel, d);
    }
    out
}

/// Write `dir` as a full layer and apply it to `dest`; then `layer` on top.
fn apply(blob: &[u8], dest: &Path) {
    let tar = gunzip(blob);
    apply_layer(tar.as_slice(), dest, &ApplyOptions::default()).unwrap();
}

fn full_layer(dir: &Path) -> Vec<u8> {
    let mut blob = Vec::new();
    write_layer(dir, SourceKind::Plain, &mut blob, &opts()).unwrap();
    blob
}

fn diff_layer(parent: &Path, child: &Path) -> (LayerInfo, Vec<u8>) {
    let mut blob = Vec::new();
    let info = write_diff_layer(parent, child, &mut blob, &opts()).unwrap();
    (info, blob)
}

fn parent_tree(p: &Path, xattrs: bool) {
    fs::write(p.join("keep.txt"), b"unchanged").unwrap();
    fs::write(p.join("same-size.txt"), b"aaaa").unwrap();
    fs::write(p.join("chmod.sh"), b"#!/bin/sh\n").unwrap();
    fs::set_permissions(p.join("chmod.sh"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(p.join("owned"), b"o").unwrap();
    fs::write(p.join("gone.txt"), b"bye").unwrap();
    fs::create_dir_all(p.join("gone-dir/sub")).unwrap();
    fs::write(p.join("gone-dir/sub/f"), b"deep").unwrap();
    fs::write(p.join("file-to-dir"), b"was a file").unwrap();
    fs::create_dir_all(p.join("dir-to-file/inner")).unwrap();
    fs::write(p.join("dir-to-file/inner/x"), b"x").unwrap();
    symlink("keep.txt", p.join("link")).unwrap();
    symlink("keep.txt", p.join("link-stays")).unwrap();
    fs::create_dir_all(p.join("hard")).unwrap();
    fs::write(p.join("hard/a"), b"linked").unwrap();
    fs::hard_link(p.join("hard/a"), p.join("hard/b")).unwrap();
    fs::create_dir_all(p.join("nested/deep")).unwrap();
    fs::write(p.join("nested/deep/unchanged.txt"), b"u").unwrap();
    fs::create_dir(p.join("empty-gone")).unwrap();
    rustix::fs::mknodat(
        CWD,
        p.join("fifo"),
        FileType::Fifo,
        Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    if xattrs {
        fs::write(p.join("xattr.txt"), b"x").unwrap();
        assert!(try_xattr(&p.join("xattr.txt"), "user.a", b"1"));
        fs::write(p.join("newxattr.txt"), b"x").unwrap();
    }
    // Fixed times everywhere, directories last.
    for e in walkdir::WalkDir::new(p).min_depth(1).contents_first(true) {
        set_mtime(e.unwrap().path(), 1_000_000);
    }
}

/// The child: a copy of the parent (`cp -a`: modes, owners, times, xattrs,
/// hardlinks) with every kind of change.
fn child_tree(parent: &Path, c: &Path, xattrs: bool) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(parent)
        .arg(c)
        .status()
        .unwrap();
    assert!(st.success());
    // Same size, same mtime, other bytes.
    fs::write(c.join("same-size.txt"), b"bbbb").unwrap();
    set_mtime(&c.join("same-size.txt"), 1_000_000);
    fs::set_permissions(c.join("chmod.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    set_mtime(&c.join("chmod.sh"), 1_000_000);
    if is_root() {
        rustix::fs::chownat(
            CWD,
            c.join("owned"),
            Some(rustix::fs::Uid::from_raw(1234)),
            Some(rustix::fs::Gid::from_raw(5678)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .unwrap();
    }
    fs::remove_file(c.join("gone.txt")).unwrap();
    fs::remove_dir_all(c.join("gone-dir")).unwrap();
    fs::remove_dir(c.join("empty-gone")).unwrap();
    fs::remove_file(c.join("file-to-dir")).unwrap();
    fs::create_dir(c.join("file-to-dir")).unwrap();
    fs::write(c.join("file-to-dir/inside"), b"now a dir").unwrap();
    fs::remove_dir_all(c.join("dir-to-file")).unwrap();
    fs::write(c.join("dir-to-file"), b"now a file").unwrap();
    fs::remove_file(c.join("link")).unwrap();
    symlink("same-size.txt", c.join("link")).unwrap();
    fs::hard_link(c.join("hard/a"), c.join("hard/c")).unwrap();
    fs::write(c.join("nested/deep/new.txt"), b"new").unwrap();
    fs::create_dir_all(c.join("new/dir")).unwrap();
    fs::write(c.join("new/dir/file"), b"brand new").unwrap();
    if xattrs {
        assert!(try_xattr(&c.join("xattr.txt"), "user.a", b"2"));
        assert!(try_xattr(&c.join("newxattr.txt"), "user.b", b"x"));
        set_mtime(&c.join("xattr.txt"), 1_000_000);
        set_mtime(&c.join("newxattr.txt"), 1_000_000);
    }
}

fn xattrs_supported(dir: &Path) -> bool {
    let probe = dir.join("probe");
    fs::write(&probe, b"").unwrap();
    let ok = try_xattr(&probe, "user.probe", b"1");
    fs::remove_file(&probe).unwrap();
    ok
}

#[test]
fn diff_layer_round_trips_every_kind_of_change() {
    let tmp = tempfile::tempdir().unwrap();
    let (parent, child, fresh) = (
        tmp.path().join("parent"),
        tmp.path().join("child"),
        tmp.path().join("fresh"),
    );
    fs::create_dir(&parent).unwrap();
    fs::create_dir(&fresh).unwrap();
    let xattrs = xattrs_supported(tmp.path());
    parent_tree(&parent, xattrs);
    child_tree(&parent, &child, xattrs);

    let (info, blob) = diff_layer(&parent, &child);
    assert_eq!(info.digest, crate::sha256_digest(&blob));
    let tar = gunzip(&blob);
    assert_eq!(info.diff_id, crate::sha256_digest(&tar));

    // What is in the layer, and what is not.
    let entries = read_entries(&tar);
    let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    for want in [
        "same-size.txt",
        "chmod.sh",
        ".wh.gone.txt",
        ".wh.gone-dir",
        ".wh.empty-gone",
        "file-to-dir/",
        "file-to-dir/.wh..wh..opq",
        "file-to-dir/inside",
        "dir-to-file",
        "link",
        "hard/",
        "hard/a",
        "hard/b",
        "hard/c",
        "nested/",
        "nested/deep/",
        "nested/deep/new.txt",
        "new/",
        "new/dir/",
        "new/dir/file",
    ] {
        assert!(paths.contains(&want), "{want} missing from {paths:?}");
    }
    for unwanted in [
        "keep.txt",
        "link-stays",
        "fifo",
        "nested/deep/unchanged.txt",
        "gone-dir/",
        "gone-dir/sub/f",
    ] {
        assert!(!paths.contains(&unwanted), "{unwanted} in {paths:?}");
    }
    if is_root() {
        assert!(paths.contains(&"owned"));
    }
    if xattrs {
        assert!(paths.contains(&"xattr.txt") && paths.contains(&"newxattr.txt"));
    }
    // Hardlinks within the layer: one file, the other paths link to it.
    let hard: Vec<_> = entries
        .iter()
        .filter(|e| e.path.starts_with("hard/"))
        .collect();
    assert_eq!(hard[1].kind, tar::EntryType::Regular);
    assert_eq!(hard[2].kind, tar::EntryType::Link);
    assert_eq!(hard[2].link.as_deref(), Some("hard/a"));
    assert_eq!(hard[3].kind, tar::EntryType::Link);
    // The layer order: sorted, a directory before its contents.
    let mut sorted = paths.clone();
    sorted.sort_by(|a, b| {
        let key = |s: &str| {
            let s = s.trim_end_matches('/');
            let s = s.replace(".wh..wh..opq", "\u{0}");
            s.split('/')
                .map(|c| c.strip_prefix(".wh.").unwrap_or(c).to_string())
                .collect::<Vec<_>>()
        };
        key(a).cmp(&key(b))
    });
    assert_eq!(paths, sorted);

    // Parent + diff, applied by cairn's unpacker, is the child.
    apply(&full_layer(&parent), &fresh);
    assert_eq!(describe(&fresh), describe(&parent));
    apply(&blob, &fresh);
    assert_eq!(describe(&fresh), describe(&child));
}

#[test]
fn identical_trees_give_an_empty_layer_and_diffs_are_reproducible() {
    let tmp = tempfile::tempdir().unwrap();
    let (parent, child) = (tmp.path().join("parent"), tmp.path().join("child"));
    fs::create_dir(&parent).unwrap();
    parent_tree(&parent, false);
    let st = Command::new("cp")
        .arg("-a")
        .arg(&parent)
        .arg(&child)
        .status()
        .unwrap();
    assert!(st.success());
    let (_, blob) = diff_layer(&parent, &child);
    assert!(read_entries(&gunzip(&blob)).is_empty());

    child_tree(&parent, &tmp.path().join("child2"), false);
    let a = diff_layer(&parent, &tmp.path().join("child2"));
    let b = diff_layer(&parent, &tmp.path().join("child2"));
    assert_eq!(a, b);
}

#[test]
fn same_size_and_mtime_is_decided_by_the_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let (parent, child) = (tmp.path().join("p"), tmp.path().join("c"));
    fs::create_dir(&parent).unwrap();
    fs::create_dir(&child).unwrap();
    // Larger than the comparison buffer, differing only in the last byte.
    let mut body = vec![b'x'; 200 * 1024];
    fs::write(parent.join("big"), &body).unwrap();
    fs::write(parent.join("twin"), &body).unwrap();
    *body.last_mut().unwrap() = b'y';
    fs::write(child.join("big"), &body).unwrap();
    body.pop();
    body.push(b'x');
    fs::write(child.join("twin"), &body).unwrap();
    for d in [&parent, &child] {
        for f in ["big", "twin"] {
            set_mtime(&d.join(f), 5);
        }
        set_mtime(d, 5);
    }
    let (_, blob) = diff_layer(&parent, &child);
    let paths: Vec<String> = read_entries(&gunzip(&blob))
        .into_iter()
        .map(|e| e.path)
        .collect();
    assert_eq!(paths, ["big"]);
}

#[test]
fn a_recreated_directory_is_opaque_as_in_an_overlay_upper() {
    let tmp = tempfile::tempdir().unwrap();
    let (parent, child) = (tmp.path().join("p"), tmp.path().join("c"));
    for d in [&parent, &child] {
        fs::create_dir_all(d.join("opt/other")).unwrap();
    }
    fs::write(parent.join("opt/other/old"), b"old").unwrap();
    fs::write(child.join("opt/other/fresh"), b"fresh").unwrap();
    let recreated: HashSet<PathBuf> = [PathBuf::from("opt/other")].into();
    assert!(!diff_is_empty(&parent, &child, &recreated).unwrap());
    let mut blob = Vec::new();
    write_diff_layer_with(&parent, &child, &mut blob, &opts(), &recreated).unwrap();
    let paths: Vec<String> = read_entries(&gunzip(&blob))
        .into_iter()
        .map(|e| e.path)
        .collect();
    assert_eq!(
        paths,
        [
            "opt/",
            "opt/other/",
            "opt/other/.wh..wh..opq",
            "opt/other/fresh"
        ]
    );
    // Without the hint the same trees give a whiteout per old entry instead.
    let (_, blob) = diff_layer(&parent, &child);
    let paths: Vec<String> = read_entries(&gunzip(&blob))
        .into_iter()
        .map(|e| e.path)
        .collect();
    assert!(
        paths.contains(&"opt/other/.wh.old".to_string()),
        "{paths:?}"
    );
    // Applied, both give the child's tree.
    let dest = tmp.path().join("applied");
    fs::create_dir(&dest).unwrap();
    apply(&full_layer(&parent), &dest);
    let mut blob = Vec::new();
    write_diff_layer_with(&parent, &child, &mut blob, &opts(), &recreated).unwrap();
    apply(&blob, &dest);
    let names: Vec<_> = fs::read_dir(dest.join("opt/other"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["fresh"]);
}
