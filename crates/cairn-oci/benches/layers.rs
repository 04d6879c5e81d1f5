//! Criterion benchmark of the layer kernels: `write_layer` (tar → gzip → both
//! sha256 digests, streamed to a sink) at gzip level 6 and 1, parallel gzip 6
//! and zstd 3, and
//! `apply_layer` of the produced gzip blob into a fresh directory.
//!
//! The input is a deterministic synthetic tree (~64 MiB) built once per run:
//! 2,000 text-like files of mixed sizes plus four 8 MiB half-random files,
//! all generated from a seeded xorshift generator. Throughput is reported
//! against the tree's file-content bytes.
//!
//! Set `CAIRN_BENCH_TREE=DIR` to build the tree in `DIR/tree` (reused if
//! the marker `DIR/tree.complete` exists) and keep it afterwards, e.g. for
//! `benches/layers-vs-tar.sh`.
#![allow(missing_docs)]

use std::fs::{self, File};
use std::hint::black_box;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn_oci::{
    ApplyOptions, LayerCompression, LayerOptions, SourceKind, apply_layer, open_layer_reader,
    write_layer,
};
use criterion::{BatchSize, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};

const SMALL_FILES: usize = 2_000;
const DIRS: usize = 40;
const BIG_FILES: usize = 4;
const BIG_SIZE: usize = 8 << 20;

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const WORDS: &[&str] = &[
    "the",
    "layer",
    "image",
    "build",
    "cairn",
    "rootless",
    "digest",
    "sha256",
    "manifest",
    "config",
    "RUN",
    "COPY",
    "FROM",
    "apt-get",
    "install",
    "/usr/bin",
    "lib",
    "static",
    "fn",
    "let",
    "mut",
    "return",
    "if",
    "else",
    "=",
    "{",
    "}",
    "(",
    ")",
    ";",
    "0",
    "1",
    "42",
    "true",
    "false",
    "null",
    "include",
    "define",
    "struct",
    "impl",
    "for",
    "while",
    "match",
    "error",
    "warning",
    "info",
    "debug",
    "path",
    "file",
    "directory",
    "owner",
    "group",
    "mode",
    "0644",
];

/// Append roughly `len` bytes of text-like, compressible content.
fn text(rng: &mut XorShift, len: usize, out: &mut Vec<u8>) {
    let end = out.len() + len;
    let mut col = 0;
    while out.len() < end {
        let w = WORDS[rng.below(WORDS.len() as u64) as usize].as_bytes();
        out.extend_from_slice(w);
        col += w.len() + 1;
        if col > 60 + rng.below(30) as usize {
            out.push(b'\n');
            col = 0;
        } else {
            out.push(b' ');
        }
    }
    out.truncate(end);
}

/// Build the synthetic tree under `root`; returns the total file-content bytes.
fn build_tree(root: &Path) -> io::Result<u64> {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut total = 0u64;
    let mut buf = Vec::new();
    for d in 0..DIRS {
        fs::create_dir_all(root.join(format!("src/d{d:02}")))?;
    }
    for i in 0..SMALL_FILES {
        // Mixed sizes: mostly small, some up to ~128 KiB (mean ~16 KiB).
        let len = match rng.below(10) {
            0..=5 => 64 + rng.below(4 << 10),
            6..=8 => (4 << 10) + rng.below(28 << 10),
            _ => (32 << 10) + rng.below(96 << 10),
        } as usize;
        buf.clear();
        text(&mut rng, len, &mut buf);
        let p = root.join(format!("src/d{:02}/f{i:04}.txt", i % DIRS));
        fs::write(&p, &buf)?;
        total += buf.len() as u64;
    }
    fs::create_dir_all(root.join("blobs"))?;
    for b in 0..BIG_FILES {
        // Half random: alternating 64 KiB blocks of random bytes and text.
        buf.clear();
        let mut block = 0;
        while buf.len() < BIG_SIZE {
            if block % 2 == 0 {
                for _ in 0..(64 << 10) / 8 {
                    buf.extend_from_slice(&rng.next().to_le_bytes());
                }
            } else {
                text(&mut rng, 64 << 10, &mut buf);
            }
            block += 1;
        }
        buf.truncate(BIG_SIZE);
        fs::write(root.join(format!("blobs/big{b}.bin")), &buf)?;
        total += buf.len() as u64;
    }
    Ok(total)
}

fn content_bytes(root: &Path) -> io::Result<u64> {
    let mut total = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir)? {
            let e = e?;
            let md = e.metadata()?;
            if md.is_dir() {
                stack.push(e.path());
            } else if md.is_file() {
                total += md.len();
            }
        }
    }
    Ok(total)
}

/// The tree to benchmark: kept under `$CAIRN_BENCH_TREE/tree` if set, else
/// in a temp dir dropped at the end.
fn tree() -> (PathBuf, u64, Option<tempfile::TempDir>) {
    if let Some(dir) = std::env::var_os("CAIRN_BENCH_TREE") {
        let root = PathBuf::from(dir).join("tree");
        let marker = root.with_extension("complete");
        if marker.exists() {
            let bytes = content_bytes(&root).expect("measure kept tree");
            return (root, bytes, None);
        }
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).expect("create tree dir");
        let bytes = build_tree(&root).expect("build tree");
        File::create(&marker).expect("mark tree complete");
        (root, bytes, None)
    } else {
        let tmp = tempfile::tempdir().expect("tempdir");
        let bytes = build_tree(tmp.path()).expect("build tree");
        (tmp.path().to_path_buf(), bytes, Some(tmp))
    }
}

fn layers(c: &mut Criterion) {
    let (root, bytes, _keep) = tree();
    eprintln!(
        "tree: {} ({} files, {:.1} MiB of file content)",
        root.display(),
        SMALL_FILES + BIG_FILES,
        bytes as f64 / (1 << 20) as f64
    );

    // The gzip layer applied by the apply bench.
    let blob_dir = tempfile::tempdir().expect("tempdir");
    let blob = blob_dir.path().join("layer.tar.gz");
    let info = {
        let mut f = io::BufWriter::new(File::create(&blob).expect("create blob"));
        let info = write_layer(&root, SourceKind::Plain, &mut f, &LayerOptions::default())
            .expect("write layer");
        f.flush().expect("flush blob");
        info
    };
    eprintln!(
        "layer (gzip -6): {} bytes, digest {}",
        info.size, info.digest
    );

    let mut g = c.benchmark_group("layers");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(10))
        .warm_up_time(Duration::from_secs(2))
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Bytes(bytes));

    let with = |gzip_level, compression| LayerOptions {
        gzip_level,
        compression,
        ..LayerOptions::default()
    };
    for (name, opts) in [
        ("write_gzip6", with(6, LayerCompression::Gzip)),
        ("write_gzip1", with(1, LayerCompression::Gzip)),
        ("write_pgzip6", with(6, LayerCompression::ParallelGzip)),
        ("write_zstd3", with(6, LayerCompression::Zstd { level: 3 })),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                black_box(
                    write_layer(black_box(&root), SourceKind::Plain, io::sink(), &opts)
                        .expect("write layer"),
                )
            })
        });
    }

    let apply_opts = ApplyOptions {
        ignore_chown_errors: true,
    };
    g.bench_function("apply_gzip6", |b| {
        b.iter_batched(
            || tempfile::tempdir().expect("tempdir"),
            |dest| {
                let reader =
                    open_layer_reader(File::open(&blob).expect("open blob")).expect("layer reader");
                let stats = apply_layer(reader, dest.path(), &apply_opts).expect("apply layer");
                black_box(stats);
                // Dropped (and removed) outside the timed section.
                dest
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, layers);
criterion_main!(benches);
