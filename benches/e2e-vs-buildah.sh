#!/usr/bin/env bash
# End-to-end build times, cairn vs buildah, measured side by side in one run
# against one local registry (CNCF distribution on loopback).
#
#   benches/e2e-vs-buildah.sh [RUNS]        (as root; needs buildah and runc)
#
# Workload: testdata/acceptance/basic (busybox base from the local registry, COPY,
# four RUN steps, ENV, WORKDIR, CMD), built and pushed.
#   cold : empty local state (cairn: fresh --state-dir; buildah: `rmi -a`), so the
#          base image is pulled and unpacked, every step runs, the image is pushed.
#   warm : the base image is already local; every step runs again, image pushed.
# Prints the median of RUNS runs for each, and the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
command -v buildah >/dev/null || { echo "buildah is not installed (apt-get install buildah runc)"; exit 1; }

cargo build --release -q -p cairn-cli
CAIRN=$PWD/target/release/cairn
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$CAIRN" dev registry --addr "127.0.0.1:$port" --storage "$work/registry" >"$work/registry.log" 2>&1 &
reg_pid=$!
trap 'kill $reg_pid 2>/dev/null; wait $reg_pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do grep -q seeded "$work/registry.log" && break; sleep 0.1; done
grep -q seeded "$work/registry.log" || { cat "$work/registry.log"; exit 1; }
reg=127.0.0.1:$port
base=$reg/busybox:latest
ctx=testdata/acceptance/basic
export BUILDAH_ISOLATION=oci
bstore=(--root "$work/buildah-root" --runroot "$work/buildah-run" --storage-driver overlay)

now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.3f}')"; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

cairn_build() { # state tag
  "$CAIRN" build -f "$ctx/Dockerfile" "$ctx" --build-arg "BASE=$base" \
    -t "$reg/bench/cairn:$2" --push --state-dir "$1" >/dev/null 2>>"$work/cairn.err"
}
buildah_build() { # tag
  buildah "${bstore[@]}" bud --quiet --runtime runc --layers=false --tls-verify=false \
    -f "$ctx/Dockerfile" --build-arg "BASE=$base" -t "$reg/bench/buildah:$1" "$ctx" >/dev/null 2>>"$work/buildah.err"
  buildah "${bstore[@]}" push --quiet --tls-verify=false "$reg/bench/buildah:$1" >/dev/null 2>>"$work/buildah.err"
}

: >"$work/cc"; : >"$work/cw"; : >"$work/bc"; : >"$work/bw"
for i in $(seq "$RUNS"); do
  rm -rf "$work/cstate"
  t=$(now); cairn_build "$work/cstate" "c$i"; echo "$(elapsed "$t" "$(now)")" >>"$work/cc"
  t=$(now); cairn_build "$work/cstate" "w$i"; echo "$(elapsed "$t" "$(now)")" >>"$work/cw"
  buildah "${bstore[@]}" rmi -a -f >/dev/null 2>&1 || true
  t=$(now); buildah_build "c$i"; echo "$(elapsed "$t" "$(now)")" >>"$work/bc"
  t=$(now); buildah_build "w$i"; echo "$(elapsed "$t" "$(now)")" >>"$work/bw"
done
cc=$(median <"$work/cc"); cw=$(median <"$work/cw"); bc=$(median <"$work/bc"); bw=$(median <"$work/bw")
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "runs: $RUNS (median seconds)"
printf '%-22s %8s %8s\n' "" cold warm
printf '%-22s %8s %8s\n' "cairn" "$cc" "$cw"
printf '%-22s %8s %8s\n' "buildah $(buildah --version | awk '{print $3}')" "$bc" "$bw"
python3 -c "print(f'buildah/cairn: cold {$bc/$cc:.1f}x, warm {$bw/$cw:.1f}x')"
echo "cairn digests identical across runs: $(skopeo inspect --tls-verify=false docker://$reg/bench/cairn:c1 | python3 -c 'import json,sys;print(json.load(sys.stdin)["Digest"])') = $(skopeo inspect --tls-verify=false docker://$reg/bench/cairn:w$RUNS | python3 -c 'import json,sys;print(json.load(sys.stdin)["Digest"])')"
