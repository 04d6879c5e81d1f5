#!/usr/bin/env bash
# Layer write and unpack, cairn side by side with the standard tools, on the
# two trees of issue 4, in one run:
#
#   small  50,000 small files (64 B - 4 KiB, 9 in 10 text-like, 1 in 10 random),
#          100 per directory
#   mixed  about 1 GiB: 1-32 MiB files of alternating 64 KiB text and random
#          blocks, plus 16 text files of 4-256 KiB beside each
#
# Both are generated deterministically by `layer-tool gen-small|gen-mixed`
# (crates/cairn-oci/examples/layer-tool.rs) under $CAIRN_SUITE_DIR (default
# /tmp/cairn-suite) and reused while their marker file exists. Never commit them.
#
# Write jobs (stdout discarded, every pipeline ends in sha256sum, cairn
# computes diff_id and digest):
#   cairn gzip-6      write_layer, default options (single-stream gzip 6)
#   cairn pgzip-6     write_layer, LayerCompression::ParallelGzip, level 6
#   cairn zstd-3      write_layer, LayerCompression::Zstd { level: 3 }
#   tar|gzip -6       tar --sort=name ... -cf - | gzip -6 | sha256sum
#   tar|zstd -3 -T0   tar --sort=name ... -cf - | zstd -3 -T0 | sha256sum
# Unpack jobs, all from cairn's own gzip-6 (or zstd-3) blob of the tree:
#   cairn apply       layer-tool apply (open_layer_reader + apply_layer)
#   tar -xzf / tar --zstd -xf, zcat|tar -x, zstd -dc|tar -x
#   umoci unpack      umoci unpack --rootless of a one-layer OCI layout holding the blob
# Unpack destinations are in $CAIRN_UNPACK_DIR (default /dev/shm, a tmpfs):
# on this VM's ext4, unpacking 50,000 files right after deleting the previous
# run's 50,000 spends most of its time in ext4's inode allocator
# (recently_deleted), for tar and cairn alike, which measures the disk's
# history rather than the unpackers.
#
# Timing: hyperfine, medians; RUNS_SMALL (default 3, 1 warm-up) and
# RUNS_MIXED (default 1, no warm-up) runs. MiB/s use the tree's file-content
# bytes. Ratio = tool median / cairn median (above 1: cairn faster).
#
# ONLY=zstd-write runs only the zstd write pair, interleaved: cairn and the
# tool pipeline alternate, PAIRS runs each (default 9 small, 5 mixed), and
# the ratio is the median of the per-pair ratios. Under other load on the
# machine that is steadier than hyperfine's one-command-after-the-other.
#
# usage: [ONLY=zstd-write] benches/layers-suite.sh [small] [mixed]    (default: both)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SUITE=${CAIRN_SUITE_DIR:-/tmp/cairn-suite}
UNPACK=${CAIRN_UNPACK_DIR:-/dev/shm}/cairn-suite-unpack
RUNS_SMALL=${RUNS_SMALL:-3}
RUNS_MIXED=${RUNS_MIXED:-1}
TREES=("$@")
[[ ${#TREES[@]} -gt 0 ]] || TREES=(small mixed)

for t in hyperfine tar gzip zstd umoci python3; do
    command -v "$t" >/dev/null || { echo "missing $t (apt-get install $t)" >&2; exit 1; }
done

(cd "$ROOT" && cargo build --release -q -p cairn-oci --example layer-tool)
LT=$ROOT/target/release/examples/layer-tool
mkdir -p "$SUITE" "$UNPACK"
RESULTS=$SUITE/results.tsv
: >"$RESULTS"

TARC="tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf -"

# time NAME RUNS WARMUP PREPARE CMD -> appends "tree job name median" to RESULTS
bench() {
    local tree=$1 job=$2 name=$3 runs=$4 warm=$5 prep=$6 cmd=$7
    local json=$SUITE/h.json
    hyperfine --style basic --runs "$runs" --warmup "$warm" --prepare "$prep" \
        --export-json "$json" -n "$name" "$cmd" >&2
    local med
    med=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][0]["median"])' "$json")
    printf '%s\t%s\t%s\t%s\n' "$tree" "$job" "$name" "$med" >>"$RESULTS"
}

# pair TREE N NAME_A CMD_A NAME_B CMD_B -> alternating runs; appends both
# medians and the median per-pair ratio (B time / A time) to RESULTS
pair() {
    local tree=$1 n=$2 na=$3 a=$4 nb=$5 b=$6
    python3 - "$tree" "$n" "$na" "$a" "$nb" "$b" >>"$RESULTS" <<'PY'
import statistics as st, subprocess, sys, time
tree, n, na, a, nb, b = sys.argv[1], int(sys.argv[2]), *sys.argv[3:]
ta, tb = [], []
def run(cmd):
    t = time.monotonic()
    subprocess.run(["bash", "-c", cmd], check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - t
for _ in range(n):
    ta.append(run(a)); tb.append(run(b))
print(f"{na}: " + " ".join(f"{x:.3f}" for x in ta), file=sys.stderr)
print(f"{nb}: " + " ".join(f"{x:.3f}" for x in tb), file=sys.stderr)
print(f"{tree}\twrite\t{na}\t{st.median(ta)}")
print(f"{tree}\twrite\t{nb}\t{st.median(tb)}")
print(f"{tree}\tpair\t{na} vs {nb}\t{st.median([y / x for x, y in zip(ta, tb)])}")
PY
}

for tree in "${TREES[@]}"; do
    dir=$SUITE/$tree
    if [[ ! -e $SUITE/$tree.complete ]]; then
        rm -rf "$dir" && mkdir -p "$dir"
        case $tree in
        small) "$LT" gen-small "$dir" 50000 >/dev/null ;;
        mixed) "$LT" gen-mixed "$dir" 1024 >/dev/null ;;
        *) echo "unknown tree $tree" >&2; exit 1 ;;
        esac
        touch "$SUITE/$tree.complete"
    fi
    if [[ $tree == small ]]; then runs=$RUNS_SMALL warm=1; else runs=$RUNS_MIXED warm=0; fi
    bytes=$(find "$dir" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
    files=$(find "$dir" -type f | wc -l)
    echo "$tree: $files files, $bytes bytes of file content" >&2
    printf '%s\tbytes\t%s\t%s\n' "$tree" "$files" "$bytes" >>"$RESULTS"

    if [[ ${ONLY:-} == zstd-write ]]; then
        if [[ $tree == small ]]; then n=${PAIRS:-9}; else n=${PAIRS:-5}; fi
        "$LT" write "$dir" - zstd 3 >/dev/null # warm the page cache
        pair "$tree" "$n" "cairn zstd-3" "$LT write $dir - zstd 3" \
            "tar|zstd -3 -T0" "$TARC -C $dir . | zstd -q -3 -T0 | sha256sum"
        continue
    fi

    # The blobs the unpackers read (cairn's own), and a layout for umoci.
    read -r _ gz_diff gz_size < <("$LT" write "$dir" "$SUITE/$tree.tar.gz" gzip 6)
    read -r _ _ zst_size < <("$LT" write "$dir" "$SUITE/$tree.tar.zst" zstd 3)
    rm -rf "$SUITE/$tree.layout"
    "$LT" layout "$SUITE/$tree.tar.gz" "$gz_diff" application/vnd.oci.image.layer.v1.tar+gzip "$SUITE/$tree.layout"
    printf '%s\tsizes\tgzip6=%s zstd3=%s\t0\n' "$tree" "$gz_size" "$zst_size" >>"$RESULTS"

    bench "$tree" write "cairn gzip-6" "$runs" "$warm" true "$LT write $dir - gzip 6"
    bench "$tree" write "cairn pgzip-6" "$runs" "$warm" true "$LT write $dir - pgzip 6"
    bench "$tree" write "cairn zstd-3" "$runs" "$warm" true "$LT write $dir - zstd 3"
    bench "$tree" write "tar|gzip -6" "$runs" "$warm" true "$TARC -C $dir . | gzip -6 | sha256sum"
    bench "$tree" write "tar|zstd -3 -T0" "$runs" "$warm" true "$TARC -C $dir . | zstd -q -3 -T0 | sha256sum"

    d=$UNPACK/d
    fresh="rm -rf $d && mkdir -p $d"
    bench "$tree" unpack "cairn apply gz" "$runs" "$warm" "$fresh" "$LT apply $SUITE/$tree.tar.gz $d 2>/dev/null"
    bench "$tree" unpack "tar -xzf" "$runs" "$warm" "$fresh" "tar -xzf $SUITE/$tree.tar.gz -C $d"
    bench "$tree" unpack "zcat|tar -x" "$runs" "$warm" "$fresh" "zcat $SUITE/$tree.tar.gz | tar -x -C $d"
    bench "$tree" unpack "umoci unpack" "$runs" "$warm" "rm -rf $d" "umoci unpack --rootless --image $SUITE/$tree.layout:latest $d >/dev/null 2>&1"
    bench "$tree" unpack "cairn apply zst" "$runs" "$warm" "$fresh" "$LT apply $SUITE/$tree.tar.zst $d 2>/dev/null"
    bench "$tree" unpack "tar --zstd -xf" "$runs" "$warm" "$fresh" "tar --zstd -xf $SUITE/$tree.tar.zst -C $d"
    rm -rf "$d"
done

python3 - "$RESULTS" <<'EOF'
import sys, collections
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
by = collections.defaultdict(dict)
bytes_, sizes = {}, {}
for tree, job, name, val in rows:
    if job == "pair":
        by[tree]["pair " + name] = float(val)
    elif job == "bytes":
        bytes_[tree] = (int(name), int(val))
    elif job == "sizes":
        sizes[tree] = name
    else:
        by[tree][name] = float(val)
pairs = [
    ("cairn gzip-6", "tar|gzip -6"),
    ("cairn pgzip-6", "tar|gzip -6"),
    ("cairn zstd-3", "tar|zstd -3 -T0"),
    ("cairn apply gz", "tar -xzf"),
    ("cairn apply gz", "zcat|tar -x"),
    ("cairn apply gz", "umoci unpack"),
    ("cairn apply zst", "tar --zstd -xf"),
]
for tree, t in by.items():
    files, b = bytes_[tree]
    mib = b / 1048576
    print(f"\n{tree}: {files} files, {mib:.1f} MiB of file content; cairn blobs {sizes.get(tree, '')}")
    print(f"| job | cairn | tool | ratio (tool time / cairn time) |")
    print(f"|---|---|---|---|")
    for c, o in pairs:
        if c in t and o in t:
            esc = lambda s: s.replace("|", "\\|")
            ratio = t.get(f"pair {c} vs {o}", t[o] / t[c])
            print(f"| {esc(c)} vs {esc(o)} | {t[c]:.3f} s = {mib / t[c]:.1f} MiB/s | {t[o]:.3f} s = {mib / t[o]:.1f} MiB/s | **{ratio:.2f}x** |")
EOF
