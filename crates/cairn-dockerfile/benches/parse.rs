//! Parses a generated 2,000-line Dockerfile: the typed parser
//! (`parse`, which runs the raw layer too) and the raw layer alone
//! (`parse_raw`). Figures are recorded in `benches/README.md`.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// A realistic mix: multi-stage, ARG/ENV/LABEL, RUN with mounts and
/// continuation lines, heredocs, COPY/ADD with flags, exec forms. Exactly
/// `lines` physical lines.
fn dockerfile(lines: usize) -> String {
    let mut out = vec![
        "# syntax=docker/dockerfile:1".to_string(),
        "ARG BASE=debian:bookworm".to_string(),
    ];
    let mut stage = 0;
    let mut i = 0;
    while out.len() < lines {
        let block: Vec<String> = match i % 12 {
            0 => {
                stage += 1;
                vec![format!("FROM ${{BASE}} AS stage{stage}")]
            }
            1 => vec![format!("ARG VERSION_{i}=1.{i}.0")],
            2 => vec![format!(
                "ENV PATH=/opt/s{stage}/bin:$PATH LANG=\"C.UTF-8\" N{i}=value\\ {i}"
            )],
            3 => vec![
                "RUN --mount=type=cache,target=/var/cache/apt \\".to_string(),
                "    apt-get update && \\".to_string(),
                "    # a comment inside the continuation".to_string(),
                format!("    apt-get install -y pkg{i} && rm -rf /var/lib/apt/lists/*"),
            ],
            4 => vec![
                "RUN <<EOF".to_string(),
                "set -eux".to_string(),
                format!("echo step {i} > /tmp/s{i}"),
                "EOF".to_string(),
            ],
            5 => vec![format!(
                "COPY --from=stage{} --chown=1000:1000 --chmod=755 /src/{i} /dst/{i}/",
                stage.max(2) - 1
            )],
            6 => vec![format!(
                "LABEL org.opencontainers.image.version=\"{i}\" com.example.k{i}=v"
            )],
            7 => vec![format!("WORKDIR /app/${{VERSION_{}}}", i - 6)],
            8 => vec![format!(
                "ADD --checksum=sha256:{:064x} https://example.com/{i}.tar.gz /opt/",
                i
            )],
            9 => vec![
                format!("COPY <<-\"conf{i}\" /etc/app/{i}.conf"),
                "\t[main]".to_string(),
                "\tkey=$literal".to_string(),
                format!("\tconf{i}"),
            ],
            10 => vec![
                "HEALTHCHECK --interval=30s CMD [\"curl\", \"-f\", \"http://localhost/\"]"
                    .to_string(),
            ],
            _ => vec![
                format!("CMD [\"/app/run\", \"--id\", \"{i}\"]"),
                String::new(),
            ],
        };
        if out.len() + block.len() > lines {
            break;
        }
        out.extend(block);
        i += 1;
    }
    // Pad with comments rather than cut an instruction in half.
    while out.len() < lines {
        out.push("# padding".to_string());
    }
    let mut text = out.join("\n");
    text.push('\n');
    text
}

fn bench(c: &mut Criterion) {
    let text = dockerfile(2000);
    assert_eq!(text.lines().count(), 2000);
    let df = cairn_dockerfile::parse("Dockerfile", &text).expect("generated file parses");
    let n: usize = df.stages.iter().map(|s| s.instructions.len() + 1).sum();
    eprintln!(
        "generated: {} lines, {} bytes, {} stages, {n} instructions",
        text.lines().count(),
        text.len(),
        df.stages.len()
    );
    let mut g = c.benchmark_group("dockerfile_2000_lines");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("parse", |b| {
        b.iter(|| cairn_dockerfile::parse("Dockerfile", black_box(&text)).unwrap())
    });
    g.bench_function("parse_raw", |b| {
        b.iter(|| cairn_dockerfile::parse_raw("Dockerfile", black_box(&text)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
