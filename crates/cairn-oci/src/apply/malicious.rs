//! The malicious-archive corpus in `testdata/layers/malicious/`.
//!
//! Every archive is generated here from raw 512-byte tar blocks, so the corpus
//! is reproducible: the test regenerates each file and checks it against the
//! checked-in bytes (set `CAIRN_REGEN_CORPUS=1` to rewrite them, e.g. after
//! adding a case; missing files are always written). Then each case is
//! applied, layer after layer, into `tmp/root` next to a sentinel directory
//! `tmp/outside`, and the test asserts the expected outcome — a clear error,
//! or containment inside the root where Docker semantics accept the entry —
//! and that nothing outside the root changed.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::*;

const BLOCK: usize = 512;

/// One raw tar header block. `name` and `link` are written verbatim.
fn header(name: &str, typeflag: u8, link: &str, size_octal: &str, mode: u32) -> [u8; BLOCK] {
    let mut b = [0u8; BLOCK];
    assert!(name.len() <= 100 && link.len() <= 100);
    b[..name.len()].copy_from_slice(name.as_bytes());
    put_octal(&mut b[100..108], &format!("{mode:07o}"));
    put_octal(&mut b[108..116], "0000000");
    put_octal(&mut b[116..124], "0000000");
    put_octal(&mut b[124..136], size_octal);
    put_octal(&mut b[136..148], &format!("{:011o}", 1234));
    b[156] = typeflag;
    b[157..157 + link.len()].copy_from_slice(link.as_bytes());
    b[257..265].copy_from_slice(b"ustar\x0000");
    set_cksum(&mut b);
    b
}

fn put_octal(field: &mut [u8], s: &str) {
    assert!(s.len() < field.len(), "{s} does not fit");
    field[..s.len()].copy_from_slice(s.as_bytes());
    field[s.len()] = 0;
}

fn set_cksum(b: &mut [u8; BLOCK]) {
    b[148..156].fill(b' ');
    let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
    let s = format!("{sum:06o}\0 ");
    b[148..156].copy_from_slice(s.as_bytes());
}

/// A raw archive under construction.
#[derive(Default)]
struct Raw(Vec<u8>);

impl Raw {
    fn block(mut self, b: [u8; BLOCK]) -> Self {
        self.0.extend_from_slice(&b);
        self
    }

    /// Entry with `data` (padded to the block size); header size = data length.
    fn entry(self, name: &str, typeflag: u8, link: &str, data: &[u8]) -> Self {
        let mode = match typeflag {
            b'5' => 0o755,
            b'2' => 0o777,
            _ => 0o644,
        };
        let h = header(name, typeflag, link, &format!("{:011o}", data.len()), mode);
        self.block(h).data(data)
    }

    fn data(mut self, data: &[u8]) -> Self {
        self.0.extend_from_slice(data);
        let pad = (BLOCK - data.len() % BLOCK) % BLOCK;
        self.0.extend(std::iter::repeat_n(0u8, pad));
        self
    }

    fn file(self, name: &str, data: &[u8]) -> Self {
        self.entry(name, b'0', "", data)
    }

    fn dir(self, name: &str) -> Self {
        self.entry(name, b'5', "", b"")
    }

    fn symlink(self, name: &str, target: &str) -> Self {
        self.entry(name, b'2', target, b"")
    }

    fn hardlink(self, name: &str, target: &str) -> Self {
        self.entry(name, b'1', target, b"")
    }

    /// A PAX extended header (type `x`) with the given records.
    fn pax(self, records: &[(&str, &str)]) -> Self {
        let mut body = Vec::new();
        for (k, v) in records {
            // "<len> <k>=<v>\n" where len counts itself.
            let rest = format!(" {k}={v}\n");
            let mut len = rest.len() + 1;
            while format!("{len}{rest}").len() != len {
                len += 1;
            }
            body.extend_from_slice(format!("{len}{rest}").as_bytes());
        }
        self.entry("PaxHeaders/x", b'x', "", &body)
    }

    /// The two zero blocks that end an archive.
    fn end(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&[0u8; 2 * BLOCK]);
        self.0
    }

    /// Stop here, without end blocks.
    fn cut(self) -> Vec<u8> {
        self.0
    }
}

/// What applying a case must do.
enum Expect {
    /// `apply_layer` of the last layer fails; the error text contains this.
    Reject(&'static str),
    /// All layers apply; these paths (relative to the root) then exist.
    Contain(&'static [&'static str]),
}

struct Case {
    name: &'static str,
    what: &'static str,
    layers: Vec<Vec<u8>>,
    expect: Expect,
}

fn cases() -> Vec<Case> {
    let big_file = vec![b'a'; 3000];
    let mut bad_cksum = header("file", b'0', "", "00000000005", 0o644);
    bad_cksum[148..155].copy_from_slice(b"0000001");
    let mut bad_cksum_garbage = header("file", b'0', "", "00000000005", 0o644);
    bad_cksum_garbage[148..156].copy_from_slice(b"zzzzzzzz");
    vec![
        Case {
            name: "dotdot-traversal",
            what: "`../outside/pwned`: a `..` component",
            layers: vec![Raw::default().file("../outside/pwned", b"x").end()],
            expect: Expect::Reject("`..` component"),
        },
        Case {
            name: "dotdot-inner",
            what: "`a/../../outside/pwned`: `..` in the middle of a path",
            layers: vec![
                Raw::default()
                    .dir("a/")
                    .file("a/../../outside/pwned", b"x")
                    .end(),
            ],
            expect: Expect::Reject("`..` component"),
        },
        Case {
            name: "absolute-path",
            what: "`/outside/pwned`: absolute paths are taken relative to the root (Docker strips the `/`)",
            layers: vec![
                Raw::default()
                    .dir("/outside/")
                    .file("/outside/pwned", b"x")
                    .end(),
            ],
            expect: Expect::Contain(&["outside/pwned"]),
        },
        Case {
            name: "symlink-escape-write",
            what: "symlink `esc -> ../outside`, then a file written through it",
            layers: vec![
                Raw::default()
                    .symlink("esc", "../outside")
                    .file("esc/pwned", b"x")
                    .end(),
            ],
            // `../outside` resolves to `<root>/outside`, which does not exist.
            expect: Expect::Reject("No such file"),
        },
        Case {
            name: "symlink-escape-write-abs",
            what: "symlink `esc -> /`, a dir `esc/outside`, then a file through it: all inside the root",
            layers: vec![
                Raw::default()
                    .symlink("esc", "/")
                    .dir("esc/outside/")
                    .file("esc/outside/pwned", b"x")
                    .end(),
            ],
            expect: Expect::Contain(&["outside/pwned", "esc"]),
        },
        Case {
            name: "symlink-escape-deep",
            what: "symlink `esc -> ../../../../../../../..`, then a file through it",
            layers: vec![
                Raw::default()
                    .symlink("esc", "../../../../../../../..")
                    .file("esc/pwned", b"x")
                    .end(),
            ],
            expect: Expect::Contain(&["pwned"]),
        },
        Case {
            name: "hardlink-outside-dotdot",
            what: "hardlink to `../outside/secret`",
            layers: vec![Raw::default().hardlink("hl", "../outside/secret").end()],
            expect: Expect::Reject("`..` component"),
        },
        Case {
            name: "hardlink-outside-via-symlink",
            what: "symlink `esc -> ../outside`, then a hardlink to `esc/secret`",
            layers: vec![
                Raw::default()
                    .symlink("esc", "../outside")
                    .hardlink("hl", "esc/secret")
                    .end(),
            ],
            expect: Expect::Reject("not present in the root"),
        },
        Case {
            name: "hardlink-absolute",
            what: "hardlink to `/etc/passwd` (host file, absent in the root)",
            layers: vec![Raw::default().hardlink("hl", "/etc/passwd").end()],
            expect: Expect::Reject("not present in the root"),
        },
        Case {
            name: "symlink-swap",
            what: "layer 1 a dir `etc/`, layer 2 a symlink `etc -> ../outside` in its place, layer 3 `etc/pwned`",
            layers: vec![
                Raw::default().dir("etc/").file("etc/ok", b"ok").end(),
                Raw::default().symlink("etc", "../outside").end(),
                Raw::default().file("etc/pwned", b"x").end(),
            ],
            expect: Expect::Reject("No such file"),
        },
        Case {
            name: "symlink-swap-same-layer",
            what: "a dir `d/`, then a symlink `d -> ../outside` replacing it, then `d/pwned`, in one layer",
            layers: vec![
                Raw::default()
                    .dir("d/")
                    .symlink("d", "../outside")
                    .file("d/pwned", b"x")
                    .end(),
            ],
            expect: Expect::Reject("No such file"),
        },
        Case {
            name: "size-beyond-data",
            what: "a file header claiming 1 GiB followed by 3000 bytes and EOF",
            layers: vec![
                Raw::default()
                    .block(header("big", b'0', "", "10000000000", 0o644))
                    .data(&big_file)
                    .cut(),
            ],
            expect: Expect::Reject("truncated"),
        },
        Case {
            name: "size-absurd",
            what: "a file header claiming 8 GiB - 1 (the ustar maximum) with no data",
            layers: vec![
                Raw::default()
                    .block(header("big", b'0', "", "77777777777", 0o644))
                    .end(),
            ],
            expect: Expect::Reject("truncated"),
        },
        Case {
            name: "pax-size-overflow",
            what: "PAX `size` larger than u64",
            layers: vec![
                Raw::default()
                    .pax(&[("size", "99999999999999999999999")])
                    .file("f", b"x")
                    .end(),
            ],
            expect: Expect::Reject("size"),
        },
        Case {
            name: "pax-size-beyond-data",
            what: "PAX `size` of 1 TiB for a 1-byte file (CVE-2026-33055's parser differential)",
            layers: vec![
                Raw::default()
                    .pax(&[("size", "1099511627776")])
                    .file("f", b"x")
                    .end(),
            ],
            expect: Expect::Reject("truncated"),
        },
        Case {
            name: "bad-checksum",
            what: "a header whose checksum field is wrong",
            layers: vec![Raw::default().block(bad_cksum).data(b"hello").end()],
            expect: Expect::Reject("checksum"),
        },
        Case {
            name: "bad-checksum-garbage",
            what: "a header whose checksum field is not octal",
            layers: vec![Raw::default().block(bad_cksum_garbage).data(b"hello").end()],
            expect: Expect::Reject("cksum"),
        },
        Case {
            name: "truncated-data",
            what: "an archive cut in the middle of a file's data",
            layers: vec![{
                let mut v = Raw::default().file("f", &big_file).end();
                v.truncate(BLOCK + 1000);
                v
            }],
            expect: Expect::Reject("truncated"),
        },
        Case {
            name: "truncated-header",
            what: "an archive cut in the middle of a header block",
            layers: vec![{
                let mut v = Raw::default().file("a", b"a").file("b", b"b").end();
                v.truncate(2 * BLOCK + 300);
                v
            }],
            expect: Expect::Reject("entire block"),
        },
        Case {
            name: "whiteout-dotdot",
            what: "a whiteout `.wh...` (would delete the parent)",
            layers: vec![Raw::default().file("etc/.wh..", b"").end()],
            expect: Expect::Reject("invalid whiteout"),
        },
    ]
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/layers/malicious")
}

fn layer_file(case: &Case, i: usize) -> PathBuf {
    if case.layers.len() == 1 {
        corpus_dir().join(format!("{}.tar", case.name))
    } else {
        corpus_dir().join(format!("{}.{}.tar", case.name, i + 1))
    }
}

fn listing(dir: &Path) -> Vec<(String, u64, u64)> {
    let mut out: Vec<_> = walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            let m = e.path().symlink_metadata().unwrap();
            (e.path().display().to_string(), m.ino(), m.len())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn corpus_is_reproducible() {
    let regen = std::env::var_os("CAIRN_REGEN_CORPUS").is_some();
    fs::create_dir_all(corpus_dir()).unwrap();
    let mut index = String::from(
        "# Malicious layer corpus\n\nGenerated by `crates/cairn-oci/src/apply/malicious.rs` \
         (`CAIRN_REGEN_CORPUS=1 cargo test -p cairn-oci corpus` rewrites it);\n\
         applied by the same file's tests.\n\n| file(s) | what | expected |\n|---|---|---|\n",
    );
    for case in cases() {
        for (i, bytes) in case.layers.iter().enumerate() {
            let path = layer_file(&case, i);
            if regen || !path.exists() {
                fs::write(&path, bytes).unwrap();
            }
            assert_eq!(
                &fs::read(&path).unwrap(),
                bytes,
                "{} differs from its generator; rerun with CAIRN_REGEN_CORPUS=1",
                path.display()
            );
        }
        let files = (0..case.layers.len())
            .map(|i| {
                let p = layer_file(&case, i);
                format!("`{}`", p.file_name().unwrap().to_string_lossy())
            })
            .collect::<Vec<_>>()
            .join(", ");
        let expect = match case.expect {
            Expect::Reject(s) => format!("error containing \"{s}\""),
            Expect::Contain(p) => format!("applied inside the root: {}", p.join(", ")),
        };
        index.push_str(&format!("| {files} | {} | {expect} |\n", case.what));
    }
    let readme = corpus_dir().join("README.md");
    if regen || !readme.exists() {
        fs::write(&readme, &index).unwrap();
    }
    assert_eq!(fs::read_to_string(&readme).unwrap(), index);
}

#[test]
fn corpus_is_rejected_or_contained() {
    for case in cases() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        fs::create_dir(&root).unwrap();
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("secret"), b"secret").unwrap();
        let before = listing(tmp.path());

        let n = case.layers.len();
        let mut result = Ok(ApplyStats::default());
        for (i, layer) in case.layers.iter().enumerate() {
            // Read the checked-in file when present (the corpus test keeps
            // it equal to the generator's bytes).
            let path = layer_file(&case, i);
            let bytes = fs::read(&path).unwrap_or_else(|_| layer.clone());
            result = apply_layer(bytes.as_slice(), &root, &ApplyOptions::default());
            if i + 1 < n {
                result
                    .as_ref()
                    .unwrap_or_else(|e| panic!("{}: layer {} failed: {e}", case.name, i + 1));
            }
        }
        match (&case.expect, &result) {
            (Expect::Reject(want), Err(e)) => {
                let msg = e.to_string();
                assert!(
                    msg.contains(want),
                    "{}: error {msg:?} does not mention {want:?}",
                    case.name
                );
            }
            (Expect::Reject(_), Ok(s)) => panic!("{}: accepted ({s:?})", case.name),
            (Expect::Contain(paths), Ok(_)) => {
                for p in *paths {
                    assert!(
                        root.join(p).symlink_metadata().is_ok(),
                        "{}: {p} missing in the root",
                        case.name
                    );
                }
            }
            (Expect::Contain(_), Err(e)) => panic!("{}: rejected: {e}", case.name),
        }

        // Nothing outside the root changed: same names, inodes and sizes
        // in tmp/ except beneath root/.
        let root_s = root.display().to_string();
        let after: Vec<_> = listing(tmp.path())
            .into_iter()
            .filter(|(p, _, _)| !p.starts_with(&format!("{root_s}/")))
            .collect();
        let before: Vec<_> = before
            .iter()
            .filter(|(p, _, _)| !p.starts_with(&format!("{root_s}/")))
            .cloned()
            .collect();
        assert_eq!(after, before, "{}: outside the root changed", case.name);
        assert_eq!(fs::read(outside.join("secret")).unwrap(), b"secret");
        assert_eq!(fs::metadata(outside.join("secret")).unwrap().nlink(), 1);
    }
}
