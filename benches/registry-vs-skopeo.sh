#!/usr/bin/env bash
# Push and pull of a 1 GiB, 10-layer image to and from a local registry, cairn's
# registry client vs `skopeo copy`, side by side in one run (issue 5).
#
#   benches/registry-vs-skopeo.sh [RUNS]     (RUNS default 3; needs skopeo,
#                                             docker-registry, python3)
#
# Image: 10 gzip (-1) layers, each a tar of ~100 MiB (uncompressed): 4 files of
# text (words from a fixed list, Python's Mersenne Twister seeded by layer) and 4
# files of incompressible bytes (SHAKE-128 of a per-layer seed), 12.5 MiB each,
# mtime 0, uid/gid 0. Written once, deterministically, as an OCI image layout
# in $CAIRN_BENCH_REGIMG (default /tmp/cairn-bench-regimg; reruns reuse it).
#
# Registry: CNCF distribution (`docker-registry serve`) on a free loopback port,
# filesystem storage in a temp dir, plain HTTP, no auth.
#
# Per run i, interleaved (who goes first alternates between runs):
#   push : skopeo copy oci:SRC:bench docker://REG/bench/skopeo-i:bench
#          regbench push SRC REG/bench/cairn-i:bench
#          New repositories each run, so every blob is uploaded. Neither tool
#          mounts: regbench never does, and skopeo's blob-info cache (which
#          would offer mounts from earlier runs' repositories) is hidden behind
#          an empty tmpfs in a private mount namespace (as root) or pointed at
#          a fresh XDG_DATA_HOME (otherwise).
#   pull : skopeo copy docker://REG/bench/skopeo-1:bench oci:EMPTY:bench
#          regbench pull REG/bench/cairn-1:bench EMPTY
#          Both store the gzip blobs as they are and verify digests.
# Times are wall clock around the whole command (process start included).
# regbench moves 4 blobs at a time (the client's default); skopeo 1.9 copies
# up to 6 layers at a time. Prints medians and skopeo/cairn ratios (>1: cairn
# faster).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
IMG=${CAIRN_BENCH_REGIMG:-/tmp/cairn-bench-regimg}
for tool in skopeo docker-registry python3 curl; do
  command -v "$tool" >/dev/null || { echo "$tool is not installed (apt-get install skopeo docker-registry python3 curl)"; exit 1; }
done

cargo build --release -q -p cairn-registry --examples
REGBENCH=$PWD/target/release/examples/regbench

# ---- the image ----------------------------------------------------------
if [ ! -f "$IMG/done" ]; then
  echo "generating the 10-layer image in $IMG (once)…"
  rm -rf "$IMG"; mkdir -p "$IMG"
  python3 - "$IMG" <<'PY'
import gzip, hashlib, io, json, os, random, sys, tarfile

out = sys.argv[1]
blobs = os.path.join(out, "blobs", "sha256")
os.makedirs(blobs)
WORDS = ("the layer image build cairn rootless digest sha256 manifest registry "
         "push pull blob index config tag repository upload mount token scope "
         "gzip zstd tar overlay snapshot cache step run copy from workdir env "
         "label arg user volume expose entrypoint cmd healthcheck shell stop "
         "signal onbuild platform linux amd64 arm64 debian alpine busybox").split()
PART = 25 << 19  # 12.5 MiB
FILES = 4        # per kind: 4 text + 4 random = 100 MiB per layer

class Hashing:
    def __init__(self, f):
        self.f, self.h, self.n = f, hashlib.sha256(), 0
    def write(self, b):
        self.h.update(b); self.n += len(b); return self.f.write(b)

def text(seed, n):
    rng = random.Random(seed)
    parts, size = [], 0
    while size < n:
        line = " ".join(rng.choices(WORDS, k=rng.randint(4, 16))) + "\n"
        parts.append(line); size += len(line)
    return "".join(parts).encode()[:n]

def put_blob(data):
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, d), "wb") as f:
        f.write(data)
    return "sha256:" + d, len(data)

layers, diff_ids = [], []
for i in range(10):
    tmp = os.path.join(out, "layer.tmp")
    with open(tmp, "wb") as raw:
        comp = Hashing(raw)
        with gzip.GzipFile(fileobj=comp, mode="wb", compresslevel=1, mtime=0) as gz:
            tarred = Hashing(gz)
            with tarfile.open(fileobj=tarred, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                d = tarfile.TarInfo(f"layer{i}")
                d.type, d.mode, d.mtime = tarfile.DIRTYPE, 0o755, 0
                tar.addfile(d)
                for j in range(FILES):
                    for kind, data in (
                        ("text", text(i * 100 + j, PART)),
                        ("random", hashlib.shake_128(f"cairn-regbench-{i}-{j}".encode()).digest(PART)),
                    ):
                        ti = tarfile.TarInfo(f"layer{i}/{kind}{j}")
                        ti.size, ti.mode, ti.mtime = len(data), 0o644, 0
                        tar.addfile(ti, io.BytesIO(data))
    dg = comp.h.hexdigest()
    os.rename(tmp, os.path.join(blobs, dg))
    layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                   "digest": "sha256:" + dg, "size": comp.n})
    diff_ids.append("sha256:" + tarred.h.hexdigest())
    print(f"  layer {i}: {tarred.n / 2**20:.1f} MiB tar, {comp.n / 2**20:.1f} MiB gzip", flush=True)

config = {"architecture": "amd64", "os": "linux",
          "config": {"Cmd": ["/bin/sh"]},
          "rootfs": {"type": "layers", "diff_ids": diff_ids},
          "history": [{"created_by": f"regbench layer {i}"} for i in range(10)]}
cd, cs = put_blob(json.dumps(config, separators=(",", ":"), sort_keys=True).encode())
manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
            "layers": layers}
md, ms = put_blob(json.dumps(manifest, separators=(",", ":")).encode())
index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
         "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md,
                        "size": ms, "annotations": {"org.opencontainers.image.ref.name": "bench"}}]}
with open(os.path.join(out, "index.json"), "w") as f:
    json.dump(index, f)
with open(os.path.join(out, "oci-layout"), "w") as f:
    f.write('{"imageLayoutVersion":"1.0.0"}')
print(f"  manifest {md}; {sum(l['size'] for l in layers) / 2**20:.1f} MiB of layers")
PY
  touch "$IMG/done"
fi
layer_bytes=$(python3 -c 'import json,sys,os
d=sys.argv[1]; i=json.load(open(d+"/index.json"))["manifests"][0]["digest"].split(":")[1]
m=json.load(open(d+"/blobs/sha256/"+i)); print(sum(l["size"] for l in m["layers"]))' "$IMG")
src_manifest=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]+"/index.json"))["manifests"][0]["digest"])' "$IMG")
# warm the page cache for both tools alike
cat "$IMG"/blobs/sha256/* >/dev/null

# ---- the registry -------------------------------------------------------
work=$(mktemp -d /tmp/cairn-regbench.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: "$work/storage"
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
EOF
docker-registry serve "$work/config.yml" >"$work/registry.log" 2>&1 &
reg_pid=$!
cleanup() {
  kill "$reg_pid" 2>/dev/null; wait "$reg_pid" 2>/dev/null || true
  if [ -z "${KEEP:-}" ]; then rm -rf "$work"; else echo "kept $work"; fi
}
trap cleanup EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$port/v2/" >/dev/null || { cat "$work/registry.log"; exit 1; }
reg=127.0.0.1:$port

# skopeo without its persistent blob-info cache (no mounts from earlier runs)
skopeo_fresh() {
  if [ "$(id -u)" = 0 ] && [ -d /var/lib/containers/cache ]; then
    unshare -m sh -c 'mount -t tmpfs tmpfs /var/lib/containers/cache && exec skopeo "$@"' skopeo "$@"
  else
    rm -rf "$work/xdg"; mkdir -p "$work/xdg"
    XDG_DATA_HOME=$work/xdg skopeo "$@"
  fi
}

# time_cmd LOG CMD... : runs CMD with output to LOG, prints wall seconds
time_cmd() {
  local log=$1; shift
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >"$log" 2>&1 || { echo "FAILED: $*" >&2; cat "$log" >&2; exit 1; }
  t1=$(date +%s.%N)
  python3 -c "print(f'{$t1 - $t0:.3f}')"
}

sk_push() { skopeo_fresh copy -q --dest-tls-verify=false "oci:$IMG:bench" "docker://$reg/bench/skopeo-$1:bench"; }
ca_push() { "$REGBENCH" push "$IMG" "$reg/bench/cairn-$1:bench"; }
sk_pull() { skopeo_fresh copy -q --src-tls-verify=false "docker://$reg/bench/skopeo-1:bench" "oci:$work/pull-skopeo-$1:bench"; }
ca_pull() { "$REGBENCH" pull "$reg/bench/cairn-1:bench" "$work/pull-cairn-$1"; }

declare -a SPUSH CPUSH SPULL CPULL
echo "registry $reg; image $IMG: 10 layers, $layer_bytes bytes of gzip layers; $RUNS runs"
for i in $(seq "$RUNS"); do
  if [ $((i % 2)) = 1 ]; then
    sp=$(time_cmd "$work/sp.log" sk_push "$i"); cp=$(time_cmd "$work/cp.log" ca_push "$i")
  else
    cp=$(time_cmd "$work/cp.log" ca_push "$i"); sp=$(time_cmd "$work/sp.log" sk_push "$i")
  fi
  if [ $((i % 2)) = 1 ]; then
    sl=$(time_cmd "$work/sl.log" sk_pull "$i"); cl=$(time_cmd "$work/cl.log" ca_pull "$i")
  else
    cl=$(time_cmd "$work/cl.log" ca_pull "$i"); sl=$(time_cmd "$work/sl.log" sk_pull "$i")
  fi
  if [ "$i" = 1 ]; then
    # sanity: same manifest pushed by both, same blobs pulled by both
    for t in skopeo cairn; do
      got=$(skopeo_fresh inspect --tls-verify=false --raw "docker://$reg/bench/$t-1:bench" | sha256sum | cut -d' ' -f1)
      [ "sha256:$got" = "$src_manifest" ] || { echo "bench/$t-1 has manifest sha256:$got, expected $src_manifest"; exit 1; }
    done
    diff <(cd "$IMG/blobs/sha256" && ls -l | awk '{print $5, $9}' | sort) \
         <(cd "$work/pull-cairn-1/blobs/sha256" && ls -l | awk '{print $5, $9}' | sort) \
      || { echo "cairn's pull differs from the source layout"; exit 1; }
    diff <(cd "$IMG/blobs/sha256" && ls | sort) <(cd "$work/pull-skopeo-1/blobs/sha256" && ls | sort) \
      || { echo "skopeo's pull differs from the source layout"; exit 1; }
    skopeo_fresh inspect --raw "oci:$work/pull-cairn-1:bench" | cmp -s - "$IMG/blobs/sha256/${src_manifest#sha256:}" \
      || { echo "skopeo cannot read cairn's pulled layout as the source manifest"; exit 1; }
  fi
  rm -rf "$work/pull-skopeo-$i" "$work/pull-cairn-$i"
  SPUSH+=("$sp"); CPUSH+=("$cp"); SPULL+=("$sl"); CPULL+=("$cl")
  echo "run $i: push skopeo $sp s, cairn $cp s | pull skopeo $sl s, cairn $cl s"
done

python3 - "$layer_bytes" "${SPUSH[*]}" "${CPUSH[*]}" "${SPULL[*]}" "${CPULL[*]}" <<'PY'
import statistics, sys
size = int(sys.argv[1]) / 2**20
sp, cp, sl, cl = ([float(x) for x in a.split()] for a in sys.argv[2:6])
med = statistics.median
print(f"\nmedians of {len(sp)} runs ({size:.0f} MiB of layers):")
for what, s, c in (("push", sp, cp), ("pull", sl, cl)):
    ms, mc = med(s), med(c)
    print(f"  {what}: skopeo {ms:.3f} s ({size / ms:.0f} MiB/s), cairn {mc:.3f} s ({size / mc:.0f} MiB/s)"
          f" -> skopeo/cairn {ms / mc:.2f}x  [target >= 1.00: {'met' if ms / mc >= 1 else 'NOT met'}]")
PY
echo "skopeo: $(skopeo --version)"
