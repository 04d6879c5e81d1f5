use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt, symlink};
use std::path::Path;

use tar::{EntryType, Header};

use super::*;
use crate::write::tests::{sample_tree, try_xattr};
use crate::{LayerOptions, SourceKind, write_layer};

/// Build a tar by hand, writing names verbatim (even `..` and absolute
/// paths, which the tar crate's safe setters refuse).
struct RawTar(tar::Builder<Vec<u8>>);

impl RawTar {
    fn new() -> Self {
        RawTar(tar::Builder::new(Vec::new()))
    }

    fn entry(
        &mut self,
        name: &str,
        kind: EntryType,
        link: &str,
        data: &[u8],
        mode: u32,
    ) -> &mut Self {
        let mut h = Header::new_gnu();
        {
            let old = h.as_old_mut();
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1234);
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }

    fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.entry(name, EntryType::Regular, "", data, 0o644)
    }

    fn dir(&mut self, name: &str) -> &mut Self {
        self.entry(name, EntryType::Directory, "", b"", 0o755)
    }

    fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.entry(name, EntryType::Symlink, target, b"", 0o777)
    }

    fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.entry(name, EntryType::Link, target, b"", 0o644)
    }

    fn bytes(&mut self) -> Vec<u8> {
        self.0.finish().unwrap();
        self.0.get_ref().clone()
    }
}

/// `tmp/root` to extract into and `tmp/outside` as a sentinel that must stay untouched.
struct Sandbox {
    _tmp: tempfile::TempDir,
    root: std::path::PathBuf,
    outside: std::path::PathBuf,
}

impl Sandbox {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        fs::create_dir(&root).unwrap();
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("secret"), b"secret").unwrap();
        Sandbox {
            _tmp: tmp,
            root,
            outside,
        }
    }

    fn apply(&self, tar: &[u8]) -> Result<ApplyStats, Error> {
        apply_layer(tar, &self.root, &ApplyOptions::default())
    }

    fn assert_outside_untouched(&self) {
        let names: Vec<_> = fs::read_dir(&self.outside)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["secret"], "something was written outside the root");
        let m = fs::metadata(self.outside.join("secret")).unwrap();
        assert_eq!(m.nlink(), 1, "outside file got hardlinked");
        assert_eq!(fs::read(self.outside.join("secret")).unwrap(), b"secret");
        // Nothing next to the root either.
        let parent: Vec<_> = fs::read_dir(self.root.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        let mut parent = parent;
        parent.sort();
        assert_eq!(parent, ["outside", "root"]);
    }
}

#[test]
fn round_trip_write_then_apply() {
    let src = tempfile::tempdir().unwrap();
    let has_xattr = sample_tree(src.path());
    let mut gz = Vec::new();
    let opts = LayerOptions {
        source_date_epoch: 1_500_000_000,
        gzip_level: 1,
        ..LayerOptions::default()
    };
    write_layer(src.path(), SourceKind::Plain, &mut gz, &opts).unwrap();

    let layer_file = tempfile::tempfile().unwrap();
    {
        let mut f = &layer_file;
        std::io::Write::write_all(&mut f, &gz).unwrap();
    }
    let reader = open_layer_reader(layer_file).unwrap();
    let sb = Sandbox::new();
    let stats = sb.apply_reader(reader);
    assert_eq!(stats.files, 3);
    assert_eq!(stats.hardlinks, 1);
    assert_eq!(stats.symlinks, 1);
    assert_eq!(stats.special, 1);
    assert_eq!(stats.dirs, 1);

    let r = &sb.root;
    assert_eq!(fs::read(r.join("a")).unwrap(), b"hello");
    assert_eq!(fs::read(r.join("d/f")).unwrap(), b"setuid");
    let a = fs::metadata(r.join("a")).unwrap();
    let a2 = fs::metadata(r.join("a2")).unwrap();
    assert_eq!(a.ino(), a2.ino());
    assert_eq!(
        a.mtime(),
        1_500_000_000.min(fs::metadata(src.path().join("a")).unwrap().mtime())
    );
    assert_eq!(
        fs::symlink_metadata(r.join("d/f")).unwrap().mode() & 0o7777,
        0o4755
    );
    let d = fs::symlink_metadata(r.join("d")).unwrap();
    assert_eq!(d.mode() & 0o7777, 0o1750);
    assert_eq!(
        d.mtime(),
        fs::metadata(src.path().join("d"))
            .unwrap()
            .mtime()
            .min(1_500_000_000)
    );
    assert_eq!(fs::read_link(r.join("s")).unwrap(), Path::new("a"));
    assert!(
        fs::symlink_metadata(r.join("p"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    let ab = fs::metadata(r.join("a-b")).unwrap();
    assert_eq!((ab.uid(), ab.gid()), (1000, 1001));
    if has_xattr {
        assert_eq!(
            xattr::get(r.join("a"), "user.cairn").unwrap().unwrap(),
            b"v1"
        );
    }

    // Re-writing the extracted tree gives the same diff_id (mtimes already clamped).
    let mut again = Vec::new();
    let first = write_layer(src.path(), SourceKind::Plain, &mut Vec::new(), &opts).unwrap();
    let second = write_layer(r, SourceKind::Plain, &mut again, &opts).unwrap();
    assert_eq!(first.diff_id, second.diff_id);
    sb.assert_outside_untouched();
}

impl Sandbox {
    fn apply_reader(&self, reader: Box<dyn Read>) -> ApplyStats {
        apply_layer(reader, &self.root, &ApplyOptions::default()).unwrap()
    }
}

#[test]
fn whiteouts_and_opaque_dirs() {
    let sb = Sandbox::new();
    let r = &sb.root;
    // "Earlier layers".
    fs::create_dir_all(r.join("x/sub")).unwrap();
    fs::write(r.join("x/old"), b"").unwrap();
    fs::write(r.join("x/sub/old"), b"").unwrap();
    fs::write(r.join("x/a"), b"earlier").unwrap();
    fs::write(r.join("y"), b"").unwrap();
    fs::create_dir_all(r.join("z/deep")).unwrap();
    fs::write(r.join("z/deep/f"), b"").unwrap();
    fs::write(r.join("keep"), b"").unwrap();

    let tar = RawTar::new()
        .file(".wh.y", b"")
        .file(".wh.z", b"")
        .file(".wh.nonexistent", b"")
        .dir("x/")
        .file("x/a", b"this layer, before the marker")
        .dir("x/sub/")
        .file("x/.wh..wh..opq", b"")
        .file("x/b", b"this layer, after the marker")
        .bytes();
    let stats = sb.apply(&tar).unwrap();
    assert_eq!(stats.whiteouts, 4);

    assert!(!r.join("y").exists());
    assert!(!r.join("z").exists());
    assert!(r.join("keep").exists());
    assert!(!r.join("x/old").exists());
    assert!(
        !r.join("x/sub/old").exists(),
        "opaque applies to earlier content of kept subdirs"
    );
    assert!(r.join("x/sub").is_dir());
    assert_eq!(
        fs::read(r.join("x/a")).unwrap(),
        b"this layer, before the marker"
    );
    assert_eq!(
        fs::read(r.join("x/b")).unwrap(),
        b"this layer, after the marker"
    );
    assert!(!r.join(".wh.y").exists());
    assert!(!r.join("x/.wh..wh..opq").exists());
    // Directory mtime fixed after the children were added.
    assert_eq!(fs::metadata(r.join("x")).unwrap().mtime(), 1234);
    sb.assert_outside_untouched();
}

#[test]
fn replaces_dir_with_file_and_file_with_dir() {
    let sb = Sandbox::new();
    let r = &sb.root;
    fs::create_dir_all(r.join("was_dir/inner")).unwrap();
    fs::write(r.join("was_file"), b"").unwrap();
    symlink(&sb.outside, r.join("was_link")).unwrap();
    let tar = RawTar::new()
        .file("was_dir", b"now a file")
        .dir("was_file/")
        .dir("was_link/")
        .file("was_link/inside", b"")
        .bytes();
    sb.apply(&tar).unwrap();
    assert_eq!(fs::read(r.join("was_dir")).unwrap(), b"now a file");
    assert!(r.join("was_file").is_dir());
    assert!(fs::symlink_metadata(r.join("was_link")).unwrap().is_dir());
    assert!(r.join("was_link/inside").is_file());
    sb.assert_outside_untouched();
}

#[test]
fn rejects_dotdot_entries() {
    let sb = Sandbox::new();
    for name in ["../evil", "a/../../evil", "./../outside/evil"] {
        let tar = RawTar::new().file(name, b"pwned").bytes();
        let err = sb.apply(&tar).unwrap_err();
        assert!(matches!(err, Error::UnsafePath { .. }), "{name}: {err}");
    }
    let tar = RawTar::new().hardlink("hl", "../outside/secret").bytes();
    assert!(matches!(
        sb.apply(&tar).unwrap_err(),
        Error::UnsafePath { .. }
    ));
    sb.assert_outside_untouched();
}

#[test]
fn absolute_paths_stay_in_root() {
    let sb = Sandbox::new();
    let tar = RawTar::new()
        .dir("/etc/")
        .file("/etc/passwd", b"root-inside")
        .bytes();
    sb.apply(&tar).unwrap();
    assert_eq!(
        fs::read(sb.root.join("etc/passwd")).unwrap(),
        b"root-inside"
    );
    sb.assert_outside_untouched();
}

#[test]
fn absolute_symlink_resolves_inside_root() {
    let sb = Sandbox::new();
    let outside_abs = sb.outside.to_str().unwrap().to_string();
    // `/etc` inside the layer means `<root>/etc`.
    let tar = RawTar::new()
        .dir("etc/")
        .symlink("link", "/etc")
        .file("link/passwd", b"inside")
        .bytes();
    sb.apply(&tar).unwrap();
    assert_eq!(fs::read(sb.root.join("etc/passwd")).unwrap(), b"inside");

    // A symlink to the real absolute path of the sentinel dir: following it must
    // resolve to `<root>/<that path>`, which does not exist → error, nothing outside.
    let tar = RawTar::new()
        .symlink("out", &outside_abs)
        .file("out/pwned", b"x")
        .bytes();
    assert!(sb.apply(&tar).is_err());
    sb.assert_outside_untouched();
}

#[test]
fn dotdot_symlink_chain_is_clamped_at_root() {
    let sb = Sandbox::new();
    let tar = RawTar::new()
        .symlink("up", "..")
        .dir("d/")
        .symlink("d/up2", "../up/../../..")
        .file("up/x", b"1")
        .file("d/up2/y", b"2")
        .bytes();
    sb.apply(&tar).unwrap();
    assert_eq!(fs::read(sb.root.join("x")).unwrap(), b"1");
    assert_eq!(fs::read(sb.root.join("y")).unwrap(), b"2");
    sb.assert_outside_untouched();
}

#[test]
fn relative_symlink_escape_is_contained() {
    let sb = Sandbox::new();
    let tar = RawTar::new()
        .symlink("rel", "../outside")
        .file("rel/pwned", b"x")
        .bytes();
    // `../outside` from the root is `<root>/outside`, absent → error.
    assert!(sb.apply(&tar).is_err());
    sb.assert_outside_untouched();
}

#[test]
fn file_over_existing_symlink_does_not_follow_it() {
    let sb = Sandbox::new();
    symlink(sb.outside.join("secret"), sb.root.join("evil")).unwrap();
    symlink(sb.outside.join("newfile"), sb.root.join("evil2")).unwrap();
    let tar = RawTar::new()
        .file("evil", b"replaced")
        .file("evil2", b"new")
        .bytes();
    sb.apply(&tar).unwrap();
    assert_eq!(fs::read(sb.root.join("evil")).unwrap(), b"replaced");
    assert!(
        fs::symlink_metadata(sb.root.join("evil"))
            .unwrap()
            .is_file()
    );
    sb.assert_outside_untouched();
}

#[test]
fn hardlinks_cannot_reach_outside() {
    let sb = Sandbox::new();
    let outside_abs = sb.outside.join("secret");
    // Host /etc/passwd exists, but the layer's `/etc/passwd` is `<root>/etc/passwd`.
    let tar = RawTar::new().hardlink("hl", "/etc/passwd").bytes();
    assert!(matches!(
        sb.apply(&tar).unwrap_err(),
        Error::UnsafePath { .. }
    ));
    let tar = RawTar::new()
        .hardlink("hl", outside_abs.to_str().unwrap())
        .bytes();
    assert!(sb.apply(&tar).is_err());
    // Through a symlink pointing outside.
    let tar = RawTar::new()
        .symlink("out", sb.outside.to_str().unwrap())
        .hardlink("hl2", "out/secret")
        .bytes();
    assert!(sb.apply(&tar).is_err());
    let tar = RawTar::new()
        .symlink("rel", "../outside")
        .hardlink("hl3", "rel/secret")
        .bytes();
    assert!(sb.apply(&tar).is_err());
    assert!(!sb.root.join("hl").exists());
    // A valid in-root hardlink works, and a hardlink to a symlink links the symlink.
    let tar = RawTar::new()
        .file("t", b"t")
        .hardlink("t2", "/t")
        .symlink("sl", sb.outside.join("secret").to_str().unwrap())
        .hardlink("sl2", "sl")
        .bytes();
    sb.apply(&tar).unwrap();
    assert_eq!(
        fs::metadata(sb.root.join("t2")).unwrap().ino(),
        fs::metadata(sb.root.join("t")).unwrap().ino()
    );
    assert!(
        fs::symlink_metadata(sb.root.join("sl2"))
            .unwrap()
            .is_symlink()
    );
    sb.assert_outside_untouched();
}

#[test]
fn whiteout_through_symlink_stays_inside() {
    let sb = Sandbox::new();
    symlink(&sb.outside, sb.root.join("lnk")).unwrap();
    symlink("../outside", sb.root.join("rel")).unwrap();
    let tar = RawTar::new()
        .file("lnk/.wh.secret", b"")
        .file("rel/.wh.secret", b"")
        .dir("opq/")
        .file("lnk/.wh..wh..opq", b"")
        .bytes();
    let _ = sb.apply(&tar);
    sb.assert_outside_untouched();
}

#[test]
fn device_nodes_and_modes() {
    let sb = Sandbox::new();
    let mut tar = RawTar::new();
    tar.entry("fifo", EntryType::Fifo, "", b"", 0o620);
    let mut h = Header::new_gnu();
    h.set_path("null").unwrap();
    h.set_entry_type(EntryType::Char);
    h.set_mode(0o666);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_device_major(1).unwrap();
    h.set_device_minor(3).unwrap();
    h.set_size(0);
    h.set_cksum();
    tar.0.append(&h, &b""[..]).unwrap();
    let stats = sb.apply(&tar.bytes()).unwrap();
    let f = fs::symlink_metadata(sb.root.join("fifo")).unwrap();
    assert!(f.file_type().is_fifo());
    assert_eq!(f.permissions().mode() & 0o7777, 0o620);
    if stats.skipped == 0 {
        let n = fs::symlink_metadata(sb.root.join("null")).unwrap();
        assert!(n.file_type().is_char_device());
        assert_eq!(n.rdev(), rustix::fs::makedev(1, 3));
        assert_eq!(n.permissions().mode() & 0o7777, 0o666);
    }
}

#[test]
fn xattrs_from_pax_are_applied_and_overlay_ones_dropped() {
    let sb = Sandbox::new();
    if !try_xattr(&sb.root, "user.probe", b"1") {
        eprintln!("skipping: no user xattrs on this filesystem");
        return;
    }
    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions([
        ("SCHILY.xattr.user.a", &b"1"[..]),
        ("SCHILY.xattr.trusted.overlay.opaque", &b"y"[..]),
    ])
    .unwrap();
    let mut h = Header::new_gnu();
    h.set_entry_type(EntryType::Regular);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(2);
    b.append_data(&mut h, "f", &b"hi"[..]).unwrap();
    let bytes = b.into_inner().unwrap();
    sb.apply(&bytes).unwrap();
    let f = sb.root.join("f");
    assert_eq!(xattr::get(&f, "user.a").unwrap().unwrap(), b"1");
    assert!(xattr::get(&f, "trusted.overlay.opaque").unwrap().is_none());
}

#[test]
fn open_layer_reader_sniffs() {
    let tar = RawTar::new().file("f", b"plain").bytes();
    let mut plain = tempfile::tempfile().unwrap();
    std::io::Write::write_all(&mut plain, &tar).unwrap();
    let sb = Sandbox::new();
    apply_layer(
        open_layer_reader(plain).unwrap(),
        &sb.root,
        &ApplyOptions::default(),
    )
    .unwrap();
    assert_eq!(fs::read(sb.root.join("f")).unwrap(), b"plain");

    // zstd, two frames (like two concatenated gzip members).
    let tar = RawTar::new().file("z", b"zstd").bytes();
    let mut zst = tempfile::tempfile().unwrap();
    let half = tar.len() / 2;
    for part in [&tar[..half], &tar[half..]] {
        let frame = zstd::stream::encode_all(part, 3).unwrap();
        std::io::Write::write_all(&mut zst, &frame).unwrap();
    }
    apply_layer(
        open_layer_reader(zst).unwrap(),
        &sb.root,
        &ApplyOptions::default(),
    )
    .unwrap();
    assert_eq!(fs::read(sb.root.join("z")).unwrap(), b"zstd");

    // A corrupt zstd stream is an error, not a short layer.
    let mut bad = tempfile::tempfile().unwrap();
    std::io::Write::write_all(&mut bad, &[0x28, 0xb5, 0x2f, 0xfd, 0, 0]).unwrap();
    assert!(
        apply_layer(
            open_layer_reader(bad).unwrap(),
            &sb.root,
            &ApplyOptions::default()
        )
        .is_err()
    );
}

#[test]
fn zstd_round_trip_write_then_apply() {
    let src = tempfile::tempdir().unwrap();
    sample_tree(src.path());
    let mut blob = tempfile::tempfile().unwrap();
    let opts = LayerOptions {
        compression: crate::LayerCompression::Zstd { level: 3 },
        compression_threads: 2,
        ..LayerOptions::default()
    };
    let info = write_layer(src.path(), SourceKind::Plain, &mut blob, &opts).unwrap();
    assert_eq!(info.media_type, crate::media_types::OCI_LAYER_ZSTD);
    let sb = Sandbox::new();
    let stats = sb.apply_reader(open_layer_reader(blob).unwrap());
    assert_eq!(stats.files, 3);
    assert_eq!(fs::read(sb.root.join("a")).unwrap(), b"hello");
    assert_eq!(fs::read(sb.root.join("d/f")).unwrap(), b"setuid");
}

#[test]
fn whiteout_under_missing_or_file_parent_is_ignored() {
    let sb = Sandbox::new();
    fs::write(sb.root.join("afile"), b"").unwrap();
    let tar = RawTar::new()
        .file("missing/.wh.x", b"")
        .file("afile/.wh.x", b"")
        .bytes();
    let stats = sb.apply(&tar).unwrap();
    assert_eq!(stats.whiteouts, 2);
    assert!(sb.root.join("afile").is_file());
    assert!(!sb.root.join("missing").exists());
}

#[test]
fn layers_stack_in_order() {
    // Layer 1 creates, layer 2 deletes and replaces: the usual multi-layer case.
    let sb = Sandbox::new();
    let l1 = RawTar::new()
        .dir("etc/")
        .file("etc/a", b"1")
        .file("etc/b", b"1")
        .dir("var/")
        .dir("var/cache/")
        .file("var/cache/x", b"1")
        .bytes();
    let l2 = RawTar::new()
        .dir("etc/")
        .file("etc/.wh.a", b"")
        .file("etc/b", b"2")
        .dir("var/cache/")
        .file("var/cache/.wh..wh..opq", b"")
        .file("var/cache/y", b"2")
        .bytes();
    sb.apply(&l1).unwrap();
    sb.apply(&l2).unwrap();
    let r = &sb.root;
    assert!(!r.join("etc/a").exists());
    assert_eq!(fs::read(r.join("etc/b")).unwrap(), b"2");
    assert!(!r.join("var/cache/x").exists());
    assert_eq!(fs::read(r.join("var/cache/y")).unwrap(), b"2");
    sb.assert_outside_untouched();
}

#[test]
fn chown_errors_policy() {
    let sb = Sandbox::new();
    let root = rustix::fs::openat(rustix::fs::CWD, &sb.root, dir_oflags(), Mode::empty()).unwrap();
    let strict = ApplyOptions::default();
    let lenient = ApplyOptions {
        ignore_chown_errors: true,
    };
    let mk = |opts| Applier::new(rustix::io::dup(&root).unwrap(), &sb.root, opts);
    let p = Path::new("f");
    let mut a = mk(&strict);
    assert!(a.chown_result(Err(Errno::INVAL), p).is_err());
    let mut a = mk(&lenient);
    a.chown_result(Err(Errno::INVAL), p).unwrap();
    a.chown_result(Err(Errno::PERM), p).unwrap();
    assert!(a.chown_result(Err(Errno::IO), p).is_err());
    assert_eq!(a.stats.chown_errors_ignored, 2);
    assert!(Applier::ids(u64::from(u32::MAX), 0, p).is_err());
}

#[test]
fn cached_parent_dir_never_outlives_a_change_of_the_path() {
    let sb = Sandbox::new();
    let tar = RawTar::new()
        .dir("d/")
        .file("d/a", b"a")
        .dir("e/")
        // `d` becomes a symlink to `e`: `d/b` must land in `e/b`.
        .symlink("d", "e")
        .file("d/b", b"b")
        .file("e/c", b"c")
        // The whiteout removes `e`; `e/x` recreates it.
        .file(".wh.e", b"")
        .file("e/x", b"x")
        // Dir replaced by a file, then a file beside it.
        .dir("f/")
        .file("f/g", b"g")
        .file("f", b"now a file")
        .file("h", b"h")
        .bytes();
    sb.apply(&tar).unwrap();
    assert!(
        fs::symlink_metadata(sb.root.join("d"))
            .unwrap()
            .is_symlink()
    );
    assert!(!sb.root.join("e/b").exists(), "whiteout removed e");
    assert_eq!(fs::read(sb.root.join("e/x")).unwrap(), b"x");
    assert_eq!(fs::read(sb.root.join("f")).unwrap(), b"now a file");
    assert_eq!(fs::read(sb.root.join("h")).unwrap(), b"h");
    sb.assert_outside_untouched();

    let sb = Sandbox::new();
    let tar = RawTar::new()
        .dir("d/")
        .dir("e/")
        .file("d/a", b"a")
        .symlink("d", "e")
        .file("d/b", b"b")
        .bytes();
    sb.apply(&tar).unwrap();
    assert_eq!(fs::read(sb.root.join("e/b")).unwrap(), b"b");
}

#[test]
fn owner_is_set_under_setgid_dirs() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root to chown");
        return;
    }
    let sb = Sandbox::new();
    let mut t = tar::Builder::new(Vec::new());
    let mut h = Header::new_gnu();
    h.set_entry_type(EntryType::Directory);
    h.set_path("s/").unwrap();
    h.set_mode(0o2775);
    h.set_uid(0);
    h.set_gid(1234);
    h.set_size(0);
    h.set_cksum();
    t.append(&h, &b""[..]).unwrap();
    for (name, gid) in [("s/root", 0), ("s/inherit", 1234), ("s/other", 77)] {
        let mut h = Header::new_gnu();
        h.set_entry_type(EntryType::Regular);
        h.set_path(name).unwrap();
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(gid);
        h.set_size(1);
        h.set_cksum();
        t.append(&h, &b"x"[..]).unwrap();
    }
    t.finish().unwrap();
    sb.apply(t.get_ref()).unwrap();
    for (name, gid) in [("s/root", 0), ("s/inherit", 1234), ("s/other", 77)] {
        let m = fs::metadata(sb.root.join(name)).unwrap();
        assert_eq!((m.uid(), m.gid()), (0, gid), "{name}");
    }
}
