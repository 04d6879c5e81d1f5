#!/usr/bin/env bash
# Per-step overhead of a RUN step (sandbox set-up + snapshot of an empty change),
# cairn vs buildah, measured side by side in one run on the same busybox image.
#
#   benches/step-overhead.sh [STEPS] [RUNS]      (as root; needs buildah and runc)
#
# cairn : (time of a build with STEPS `RUN true` steps - time of the same build
#          with none) / STEPS, warm local state (base already unpacked), no push.
# buildah run : time of STEPS `buildah run CTR true` / STEPS on a working container.
# buildah bud : like cairn, (STEPS-step bud - 0-step bud) / STEPS, --layers=false.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-20}
RUNS=${2:-5}
command -v buildah >/dev/null || { echo "buildah is not installed (apt-get install buildah runc)"; exit 1; }
cargo build --release -q -p cairn-cli
CAIRN=$PWD/target/release/cairn
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$CAIRN" dev registry --addr "127.0.0.1:$port" --storage "$work/registry" >"$work/registry.log" 2>&1 &
reg_pid=$!
bstore=(--root "$work/buildah-root" --runroot "$work/buildah-run" --storage-driver overlay)
cleanup() {
  buildah "${bstore[@]}" rm -a >/dev/null 2>&1 || true
  kill $reg_pid 2>/dev/null; wait $reg_pid 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 100); do grep -q seeded "$work/registry.log" && break; sleep 0.1; done
base=127.0.0.1:$port/busybox:latest

mkdir -p "$work/ctx0" "$work/ctxN"
echo "FROM $base" >"$work/ctx0/Dockerfile"
{ echo "FROM $base"; for i in $(seq "$STEPS"); do echo "RUN true # $i"; done; } >"$work/ctxN/Dockerfile"

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
timed() { local t; t=$(now); "$@" >/dev/null 2>"$work/last.err" || { cat "$work/last.err"; exit 1; }; python3 -c "print($(now) - $t)"; }

# Warm both: base pulled and unpacked once.
"$CAIRN" build "$work/ctx0" --state-dir "$work/cstate" >/dev/null 2>&1
buildah "${bstore[@]}" pull --quiet --tls-verify=false "$base" >/dev/null
ctr=$(buildah "${bstore[@]}" from --quiet --tls-verify=false "$base")

run_steps() { for _ in $(seq "$STEPS"); do buildah "${bstore[@]}" run --runtime runc "$ctr" true; done; }
: >"$work/c"; : >"$work/br"; : >"$work/bb"
for _ in $(seq "$RUNS"); do
  t0=$(timed "$CAIRN" build "$work/ctx0" --state-dir "$work/cstate")
  tN=$(timed "$CAIRN" build "$work/ctxN" --state-dir "$work/cstate")
  python3 -c "print(($tN - $t0) / $STEPS * 1000)" >>"$work/c"
  tr=$(timed run_steps)
  python3 -c "print($tr / $STEPS * 1000)" >>"$work/br"
  b0=$(timed buildah "${bstore[@]}" bud --quiet --runtime runc --layers=false --tls-verify=false "$work/ctx0")
  bN=$(timed buildah "${bstore[@]}" bud --quiet --runtime runc --layers=false --tls-verify=false "$work/ctxN")
  python3 -c "print(($bN - $b0) / $STEPS * 1000)" >>"$work/bb"
done
c=$(median <"$work/c"); br=$(median <"$work/br"); bb=$(median <"$work/bb")
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $STEPS steps, median of $RUNS runs"
printf 'cairn RUN step            %7.1f ms\n' "$c"
printf 'buildah run               %7.1f ms\n' "$br"
printf 'buildah bud RUN step      %7.1f ms\n' "$bb"
python3 -c "print(f'buildah run / cairn: {$br/$c:.1f}x   buildah bud / cairn: {$bb/$c:.1f}x')"
