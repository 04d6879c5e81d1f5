//! Command-line front end to cairn's layer kernels, for `benches/layers-suite.sh`
//! (side-by-side timing against tar, gzip, zstd and umoci) and for profiling.
//!
//! ```text
//! layer-tool gen-small DIR FILES          # FILES small text-like files, 100 per directory
//! layer-tool gen-mixed DIR MIB            # about MIB MiB, half compressible, half random
//! layer-tool write DIR OUT gzip|pgzip|zstd LEVEL [THREADS]   # prints digest, diff_id, size
//! layer-tool apply LAYER DEST             # gzip, zstd or plain tar
//! layer-tool layout LAYER DIFF_ID MEDIA_TYPE OUT   # one-layer OCI layout, ref `latest`
//! ```
#![allow(missing_docs)]

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

use cairn_oci::{
    ApplyOptions, ContentStore, Digest, ImageConfig, LayerCompression, LayerOptions, SourceKind,
    apply_layer, canonical_json, media_types, open_layer_reader, write_layer, write_oci_layout,
};

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
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
    "the", "layer", "image", "build", "cairn", "rootless", "digest", "sha256", "manifest",
    "config", "RUN", "COPY", "FROM", "apt-get", "install", "/usr/bin", "lib", "static", "fn",
    "let", "mut", "return", "if", "else", "=", "{", "}", "(", ")", ";", "0", "1", "42", "true",
    "false", "self", "struct", "impl", "pub", "use",
];

fn text(rng: &mut XorShift, len: usize, out: &mut Vec<u8>) {
    let start = out.len();
    let mut col = 0;
    while out.len() - start < len {
        let w = WORDS[rng.below(WORDS.len() as u64) as usize];
        out.extend_from_slice(w.as_bytes());
        col += w.len() + 1;
        if col > 60 + rng.below(30) as usize {
            out.push(b'\n');
            col = 0;
        } else {
            out.push(b' ');
        }
    }
    out.truncate(start + len);
}

fn random(rng: &mut XorShift, len: usize, out: &mut Vec<u8>) {
    let start = out.len();
    while out.len() - start < len {
        out.extend_from_slice(&rng.next().to_le_bytes());
    }
    out.truncate(start + len);
}

fn gen_small(dir: &Path, files: usize) -> io::Result<u64> {
    let mut rng = XorShift(0x5EED_0001);
    let mut total = 0;
    let mut buf = Vec::new();
    for i in 0..files {
        let d = dir.join(format!("d{:04}", i / 100));
        if i % 100 == 0 {
            fs::create_dir_all(&d)?;
        }
        // 64 B – 4 KiB, mostly text; one file in ten is random bytes.
        let len = 64 + rng.below(4033) as usize;
        buf.clear();
        if i % 10 == 9 {
            random(&mut rng, len, &mut buf);
        } else {
            text(&mut rng, len, &mut buf);
        }
        fs::write(d.join(format!("f{i:06}.txt")), &buf)?;
        total += len as u64;
    }
    Ok(total)
}

fn gen_mixed(dir: &Path, mib: usize) -> io::Result<u64> {
    let mut rng = XorShift(0x5EED_0002);
    let mut total = 0u64;
    let goal = (mib as u64) << 20;
    let mut i = 0;
    let mut buf = Vec::new();
    while total < goal {
        // 1–32 MiB files of alternating 64 KiB blocks of text and random bytes,
        // plus a few hundred 4–256 KiB text files per GiB.
        let d = dir.join(format!("part{:02}", i / 16));
        fs::create_dir_all(&d)?;
        let len = ((1 + rng.below(32)) << 20).min(goal - total) as usize;
        buf.clear();
        while buf.len() < len {
            let n = (64 << 10).min(len - buf.len());
            if (buf.len() >> 16) % 2 == 0 {
                text(&mut rng, n, &mut buf);
            } else {
                random(&mut rng, n, &mut buf);
            }
        }
        fs::write(d.join(format!("blob{i:04}.bin")), &buf)?;
        total += len as u64;
        for j in 0..16 {
            let n = 4096 + rng.below(252 << 10) as usize;
            buf.clear();
            text(&mut rng, n, &mut buf);
            fs::write(d.join(format!("text{i:04}-{j:02}.txt")), &buf)?;
            total += n as u64;
        }
        i += 1;
    }
    Ok(total)
}

fn run(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["gen-small", dir, n] => {
            let bytes = gen_small(Path::new(dir), n.parse()?)?;
            println!("{bytes}");
        }
        ["gen-mixed", dir, mib] => {
            let bytes = gen_mixed(Path::new(dir), mib.parse()?)?;
            println!("{bytes}");
        }
        ["write", dir, out, codec, level, rest @ ..] => {
            let compression = match *codec {
                "gzip" => LayerCompression::Gzip,
                "pgzip" => LayerCompression::ParallelGzip,
                "zstd" => LayerCompression::Zstd {
                    level: level.parse()?,
                },
                other => return Err(format!("unknown codec {other}").into()),
            };
            let opts = LayerOptions {
                gzip_level: if codec.ends_with("gzip") {
                    level.parse()?
                } else {
                    6
                },
                compression,
                compression_threads: rest.first().map(|t| t.parse()).transpose()?.unwrap_or(0),
                ..LayerOptions::default()
            };
            let info = if *out == "-" {
                write_layer(Path::new(dir), SourceKind::Plain, io::sink(), &opts)?
            } else {
                let mut f = BufWriter::new(File::create(out)?);
                let info = write_layer(Path::new(dir), SourceKind::Plain, &mut f, &opts)?;
                f.flush()?;
                info
            };
            println!("{} {} {}", info.digest, info.diff_id, info.size);
        }
        ["apply", layer, dest] => {
            let reader = open_layer_reader(File::open(layer)?)?;
            let opts = ApplyOptions {
                ignore_chown_errors: true,
            };
            let stats = apply_layer(reader, Path::new(dest), &opts)?;
            eprintln!("{stats:?}");
        }
        ["layout", layer, diff_id, media_type, out] => {
            let store = ContentStore::open(Path::new(out).join(".store"))?;
            let ld_digest = sha256_file(Path::new(layer))?;
            let ld = store.ingest_verified(File::open(layer)?, &ld_digest)?;
            let mut cfg = ImageConfig {
                architecture: "amd64".into(),
                os: "linux".into(),
                ..Default::default()
            };
            cfg.rootfs
                .diff_ids
                .push(Digest::try_from(diff_id.to_string())?);
            let cfg_bytes = cfg.to_canonical_json()?;
            let cd = store.put_bytes(&cfg_bytes)?;
            let manifest = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": media_types::OCI_MANIFEST,
                "config": {"mediaType": media_types::OCI_CONFIG, "digest": cd.to_string(), "size": cfg_bytes.len()},
                "layers": [{"mediaType": media_type, "digest": ld_digest.to_string(), "size": ld}],
            });
            let mbytes = canonical_json(&manifest)?;
            let md = store.put_bytes(&mbytes)?;
            write_oci_layout(
                &store,
                &md,
                media_types::OCI_MANIFEST,
                mbytes.len() as u64,
                Path::new(out),
                Some("latest"),
            )?;
        }
        _ => return Err("usage: see the doc comment of examples/layer-tool.rs".into()),
    }
    Ok(())
}

fn sha256_file(p: &Path) -> io::Result<Digest> {
    let mut w = cairn_oci::HashingWriter::new(io::sink());
    io::copy(&mut File::open(p)?, &mut w)?;
    Ok(w.finish().1)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("layer-tool: {e}");
            ExitCode::FAILURE
        }
    }
}
