#!/usr/bin/env bash
# `cairn unpack` vs `umoci unpack` of the same ~500 MB image from the same OCI
# layout, side by side in one run (issue 8's unpack benchmark).
#
#   benches/unpack-vs-umoci.sh [RUNS]        (as root; needs umoci; RUNS default 3)
#
# The image (built once, reused while $WORK/layout exists; WORK is
# $CAIRN_UNPACK_BENCH, default /var/tmp/cairn-unpack-bench; never commit it) is made by
# `cairn build` FROM scratch with four COPY layers of trees generated
# deterministically by `layer-tool gen-small|gen-mixed`
# (crates/cairn-oci/examples/layer-tool.rs):
#   layer 1  30,000 small files (64 B - 4 KiB, 9 in 10 text-like), 100 per dir
#   layer 2  about 200 MiB of 1-32 MiB files, alternating text and random 64 KiB blocks
#   layer 3  about 200 MiB more of the same
#   layer 4  10,000 more small files
# gzip-6 layers (cairn's default, parallel gzip), written as an OCI layout tagged `v1`.
#
# Each run, alternating (cairn first on odd runs, umoci first on even ones), from
# a warm page cache (dropping caches is not possible on this shared VM):
#   cairn  cairn unpack oci:LAYOUT:v1 DEST      (verifies every blob's digest,
#                                               then applies the layers; owners kept)
#   umoci  umoci unpack --image LAYOUT:v1 BUNDLE (as root: owners kept; also writes
#                                               the bundle's config.json and an mtree
#                                               manifest of the rootfs, as it always does)
# Diagnostic, not a contender (after the two, each run):
#   apply  `layer-tool apply` of the four layer blobs one after the other: cairn-oci's
#          unpacker alone, without the digest checks, the pipeline or the CLI
# Destinations are on $CAIRN_UNPACK_DIR (default /dev/shm, a tmpfs) and removed
# before each run, untimed. The two trees are compared once (paths, types, modes,
# owners, sizes, file contents) so the times are for the same result.
# Prints every time, the medians and the ratio umoci/cairn (above 1: cairn faster).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
WORK=${CAIRN_UNPACK_BENCH:-/var/tmp/cairn-unpack-bench}
OUT=${CAIRN_UNPACK_DIR:-/dev/shm}/cairn-unpack-bench-out
for tool in umoci python3; do
  command -v "$tool" >/dev/null || { echo "$tool is not installed (apt-get install $tool)"; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "run as root (umoci keeps owners only as root)"; exit 1; }

cargo build --release -q -p cairn-cli
cargo build --release -q -p cairn-oci --example layer-tool
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
CAIRN=$TARGET/release/cairn
LT=$TARGET/release/examples/layer-tool
# A copy: other builds of the workspace may replace target/release/cairn mid-run.
mkdir -p "$WORK" "$OUT"
cp "$CAIRN" "$WORK/cairn"; CAIRN=$WORK/cairn

layout=$WORK/layout
if [ ! -f "$layout/index.json" ]; then
  echo "generating the trees and building the image (once)…"
  ctx=$WORK/ctx
  rm -rf "$ctx" "$layout"
  mkdir -p "$ctx"
  "$LT" gen-small "$ctx/small1" 30000 >/dev/null
  "$LT" gen-mixed "$ctx/mixed1" 200 >/dev/null
  "$LT" gen-mixed "$ctx/mixed2" 200 >/dev/null
  "$LT" gen-small "$ctx/small2" 10000 >/dev/null
  printf 'FROM scratch\nCOPY small1/ /usr/share/small1/\nCOPY mixed1/ /opt/mixed1/\nCOPY mixed2/ /opt/mixed2/\nCOPY small2/ /usr/lib/small2/\nENV PATH=/usr/bin:/bin\n' >"$ctx/Dockerfile"
  "$CAIRN" build "$ctx" -t localhost/bench/unpack:v1 --output "type=oci,dest=$layout" \
    --state-dir "$WORK/build-state" >"$WORK/build.log" 2>&1 || { tail "$WORK/build.log"; exit 1; }
  rm -rf "$WORK/build-state" "$ctx"
fi
read -r files bytes blobs < <(python3 - "$layout" <<'EOF'
import json, sys, os
lay = sys.argv[1]
idx = json.load(open(os.path.join(lay, "index.json")))
blob = lambda d: os.path.join(lay, "blobs", "sha256", d.split(":")[1])
m = json.load(open(blob(idx["manifests"][0]["digest"])))
print(len(m["layers"]), sum(l["size"] for l in m["layers"]), ",".join(blob(l["digest"]) for l in m["layers"]))
EOF
)
IFS=, read -r -a BLOBS <<<"$blobs"
echo "image: $files layers, $((bytes / 1048576)) MiB compressed, in $layout"

now() { date +%s.%N; }
declare -a T_CAIRN T_UMOCI
run_cairn() {
  rm -rf "$OUT/cairn"
  local t0; t0=$(now)
  "$CAIRN" unpack "oci:$layout:v1" "$OUT/cairn" --env-file "$OUT/cairn.env" \
    --state-dir "$WORK/unpack-state" --progress plain >"$OUT/cairn.log" 2>&1 || { cat "$OUT/cairn.log"; exit 1; }
  T_CAIRN+=("$(echo "$(now) - $t0" | bc -l)")
}
run_umoci() {
  rm -rf "$OUT/umoci"
  local t0; t0=$(now)
  umoci unpack --image "$layout:v1" "$OUT/umoci" >"$OUT/umoci.log" 2>&1 || { cat "$OUT/umoci.log"; exit 1; }
  T_UMOCI+=("$(echo "$(now) - $t0" | bc -l)")
}
declare -a T_APPLY
run_apply() {
  rm -rf "$OUT/apply"; mkdir "$OUT/apply"
  local t0; t0=$(now)
  for b in "${BLOBS[@]}"; do "$LT" apply "$b" "$OUT/apply" 2>/dev/null; done
  T_APPLY+=("$(echo "$(now) - $t0" | bc -l)")
  rm -rf "$OUT/apply"
}
for i in $(seq "$RUNS"); do
  if [ $((i % 2)) = 1 ]; then run_cairn; run_umoci; else run_umoci; run_cairn; fi
  run_apply
  printf 'run %d: cairn %.3f s, umoci %.3f s (layer-tool apply alone %.3f s)\n' \
    "$i" "${T_CAIRN[-1]}" "${T_UMOCI[-1]}" "${T_APPLY[-1]}"
done

# Same result? (the last run's trees)
python3 - "$OUT/cairn" "$OUT/umoci/rootfs" <<'EOF'
import os, sys, hashlib, stat
def walk(root):
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n); st = os.lstat(p); rel = os.path.relpath(p, root)
            data = None
            if stat.S_ISREG(st.st_mode):
                data = hashlib.sha256(open(p, 'rb').read()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                data = os.readlink(p)
            out[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                        st.st_size if stat.S_ISREG(st.st_mode) else 0, data)
    return out
a, b = walk(sys.argv[1]), walk(sys.argv[2])
diff = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
if diff:
    print(f"trees differ in {len(diff)} paths, e.g. {diff[:5]}"); sys.exit(1)
print(f"trees equal: {len(a)} entries, {sum(v[4] for v in a.values()) // 1048576} MiB of file content")
EOF

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
mc=$(median "${T_CAIRN[@]}"); mu=$(median "${T_UMOCI[@]}"); ma=$(median "${T_APPLY[@]}")
printf 'median of %d: cairn unpack %.3f s, umoci unpack %.3f s -> umoci/cairn %.2fx (layer-tool apply alone %.3f s)\n' \
  "$RUNS" "$mc" "$mu" "$(echo "$mu / $mc" | bc -l)" "$ma"
rm -rf "$OUT"
