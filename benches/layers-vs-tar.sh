#!/usr/bin/env bash
# Time the standard tools on the same synthetic tree the criterion bench
# `cargo bench -p cairn-oci --bench layers` uses:
#
#   tar (reproducible flags) | gzip -6 | sha256sum
#   tar (reproducible flags) | gzip -1 | sha256sum
#   zcat layer.tar.gz | tar -x -C dest          (layer made with gzip -6)
#
# The tree is the one the bench builds and keeps under $CAIRN_BENCH_TREE/tree
# (default /tmp/cairn-bench). If it is missing, the bench is run once in
# criterion's --test mode (one iteration each) to create it.
#
# Uses hyperfine (3 runs, medians) if installed, else a `date +%s.%N` loop.
# Prints seconds and MiB/s against the tree's file-content bytes, the same
# denominator the criterion bench reports throughput against.
set -euo pipefail

RUNS=${RUNS:-3}
BENCH_DIR=${CAIRN_BENCH_TREE:-/tmp/cairn-bench}
TREE=$BENCH_DIR/tree
HERE=$(cd "$(dirname "$0")" && pwd)

if [[ ! -e $BENCH_DIR/tree.complete ]]; then
    echo "tree not found at $TREE; building it via the criterion bench (--test mode)" >&2
    (cd "$HERE/.." && CAIRN_BENCH_TREE=$BENCH_DIR cargo bench -p cairn-oci --bench layers -- --test)
fi

BYTES=$(find "$TREE" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

TAR="tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - -C $TREE ."
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - -C "$TREE" . | gzip -6 >"$WORK/layer.tar.gz"
TARBYTES=$(tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - -C "$TREE" . | wc -c)

echo "tree: $TREE"
echo "file content: $BYTES bytes ($(awk -v b="$BYTES" 'BEGIN {printf "%.1f", b/1048576}') MiB), tar stream: $TARBYTES bytes, gzip -6 layer: $(stat -c %s "$WORK/layer.tar.gz") bytes"
echo "tools: $(tar --version | head -1); gzip $(gzip --version | head -1 | awk '{print $2}'); $(sha256sum --version | head -1)"
echo

NAMES=("tar|gzip -6|sha256sum" "tar|gzip -1|sha256sum" "zcat|tar -x")
CMDS=(
    "$TAR | gzip -6 | sha256sum >/dev/null"
    "$TAR | gzip -1 | sha256sum >/dev/null"
    "zcat $WORK/layer.tar.gz | tar -x -C $WORK/dest"
)
PREPS=(
    "true"
    "true"
    "rm -rf $WORK/dest && mkdir $WORK/dest"
)

medians=()
if command -v hyperfine >/dev/null; then
    echo "timing with $(hyperfine --version), $RUNS runs each"
    for i in "${!CMDS[@]}"; do
        hyperfine --style basic --runs "$RUNS" --warmup 1 --prepare "${PREPS[$i]}" \
            --export-json "$WORK/h$i.json" -n "${NAMES[$i]}" "${CMDS[$i]}" >&2
        medians+=("$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][0]["median"])' "$WORK/h$i.json")")
    done
else
    echo "hyperfine not found; timing with a date +%s.%N loop, $RUNS runs each"
    for i in "${!CMDS[@]}"; do
        times=()
        for _ in $(seq "$RUNS"); do
            bash -c "${PREPS[$i]}"
            t0=$(date +%s.%N)
            bash -o pipefail -c "${CMDS[$i]}"
            t1=$(date +%s.%N)
            times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b-a}')")
        done
        medians+=("$(printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}')")
    done
fi

echo
printf '%-24s %12s %12s\n' "command" "median s" "MiB/s"
for i in "${!CMDS[@]}"; do
    printf '%-24s %12.3f %12.1f\n' "${NAMES[$i]}" "${medians[$i]}" \
        "$(awk -v b="$BYTES" -v t="${medians[$i]}" 'BEGIN {print b/1048576/t}')"
done
