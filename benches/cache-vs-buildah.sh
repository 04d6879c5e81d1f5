#!/usr/bin/env bash
# The registry layer cache end to end, cairn vs buildah, measured side by side in
# one run against one local registry (CNCF distribution on loopback).
#
#   benches/cache-vs-buildah.sh [RUNS]      (as root; needs buildah, runc, skopeo, debootstrap)
#
# Workload: benches/workloads/w-cache (10 steps: ENV, apt-get install of git +
# openssl + ca-certificates from deb.debian.org, WORKDIR, 5 RUN steps generating
# ~150 MB of deterministic files, COPY, CMD) on a Debian bookworm minbase image.
# The base is made once with debootstrap (cached in $CAIRN_BENCH_DEBIAN, default
# /var/tmp/cairn-bench-debian, so reruns skip it) and pushed to the local
# registry with `cairn build` (FROM scratch + COPY rootfs/ /).
#
# Per run i (RUNS, default 3), every build tags and pushes the image:
#   cold         : empty local state and an empty cache repo. cairn: fresh
#                  --state-dir, --cache-repo REG/bench/ccache-i; buildah: `rmi -a -f`,
#                  bud --layers --cache-to/--cache-from REG/bench/bcache-i.
#   warm         : base already local, every step runs again, new empty cache repo.
#                  cairn: same --state-dir, --cache-repo REG/bench/ccache-wi; buildah:
#                  same storage, --layers --no-cache, --cache-to/--cache-from bcache-wi.
#   local hit    : same local state, cache repo of the cold run (buildah's --layers
#                  cache in its own storage answers; cairn's keys hit in ccache-i).
#   registry hit : EMPTY local state, cache repo of the cold run. cairn: fresh
#                  --state-dir, --cache-repo ccache-i; buildah: `rmi -a -f`, bud
#                  --layers --cache-from/--cache-to bcache-i.
#   RUN alone    : the Dockerfile's RUN commands run directly with chroot(8) in a
#                  copy of the base rootfs (same ENV and WORKDIR), each timed; their
#                  sum is subtracted from the cold times to estimate each builder's
#                  own overhead.
# Prints the medians, the ratios buildah/cairn and the issue-7 targets.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
DEB=${CAIRN_BENCH_DEBIAN:-/var/tmp/cairn-bench-debian}
for tool in buildah runc skopeo debootstrap unshare chroot; do
  command -v "$tool" >/dev/null || { echo "$tool is not installed (apt-get install buildah runc skopeo debootstrap)"; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "run as root (debootstrap, chroot, buildah's storage)"; exit 1; }

cargo build --release -q -p cairn-cli
CAIRN=$PWD/target/release/cairn
ctx=benches/workloads/w-cache

# The Debian base rootfs, trimmed like the official images: no apt caches or
# lists, an empty /dev, and no /etc/hostname, /etc/hosts, /etc/resolv.conf (the
# builders provide their own; cairn's `COPY rootfs/ /` also fails with EBUSY on
# /etc/hostname).
if [ ! -d "$DEB/rootfs" ]; then
  echo "debootstrap --variant=minbase bookworm into $DEB/rootfs (once)…"
  mkdir -p "$DEB"; rm -rf "$DEB/rootfs.tmp"
  debootstrap --variant=minbase bookworm "$DEB/rootfs.tmp" http://deb.debian.org/debian >"$DEB/debootstrap.log" 2>&1 \
    || { tail "$DEB/debootstrap.log"; exit 1; }
  rm -rf "$DEB"/rootfs.tmp/var/cache/apt/archives/*.deb "$DEB"/rootfs.tmp/var/lib/apt/lists/* "$DEB"/rootfs.tmp/dev/*
  rm -f "$DEB"/rootfs.tmp/etc/hostname "$DEB"/rootfs.tmp/etc/hosts "$DEB"/rootfs.tmp/etc/resolv.conf
  mv "$DEB/rootfs.tmp" "$DEB/rootfs"
fi

work=$(mktemp -d /var/tmp/cairn-cache-bench.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$CAIRN" dev registry --addr "127.0.0.1:$port" --storage "$work/registry" >"$work/registry.log" 2>&1 &
reg_pid=$!
export BUILDAH_ISOLATION=oci
bstore=(--root "$work/buildah-root" --runroot "$work/buildah-run" --storage-driver overlay)
cleanup() {
  buildah "${bstore[@]}" rm -a >/dev/null 2>&1 || true
  buildah "${bstore[@]}" rmi -a -f >/dev/null 2>&1 || true
  kill $reg_pid 2>/dev/null; wait $reg_pid 2>/dev/null || true
  if [ -z "${KEEP:-}" ]; then rm -rf "$work"; else echo "kept $work"; fi
}
trap cleanup EXIT
for _ in $(seq 100); do grep -q seeded "$work/registry.log" && break; sleep 0.1; done
grep -q seeded "$work/registry.log" || { cat "$work/registry.log"; exit 1; }
reg=127.0.0.1:$port
base=$reg/bench/debian:bookworm
mkdir -p "$work/basefile"
printf 'FROM scratch\nCOPY rootfs/ /\nCMD ["/bin/bash"]\n' >"$work/basefile/Dockerfile"
"$CAIRN" build -f "$work/basefile/Dockerfile" "$DEB" -t "$base" --push --state-dir "$work/basestate" >"$work/base.log" 2>&1 \
  || { cat "$work/base.log"; exit 1; }
rm -rf "$work/basestate"

now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.3f}')"; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
fail() { echo "FAILED: $1 (log: $2)"; tail -20 "$2"; KEEP=1; exit 1; }

cairn_build() { # state tag cache-repo -> log in $work/cairn-TAG.log
  "$CAIRN" build -f "$ctx/Dockerfile" "$ctx" --build-arg "BASE=$base" -t "$reg/bench/cairn:$2" --push \
    --state-dir "$1" --cache-repo "$reg/bench/$3" >"$work/cairn-$2.log" 2>&1 || fail "cairn $2" "$work/cairn-$2.log"
}
buildah_build() { # tag cache-repo [bud flags…] -> log in $work/buildah-TAG.log
  local tag=$1 cache=$2; shift 2
  { buildah "${bstore[@]}" bud --runtime runc --layers --tls-verify=false "$@" \
      --cache-to "$reg/bench/$cache" --cache-from "$reg/bench/$cache" \
      -f "$ctx/Dockerfile" --build-arg "BASE=$base" -t "$reg/bench/buildah:$tag" "$ctx" &&
    buildah "${bstore[@]}" push --tls-verify=false "$reg/bench/buildah:$tag"; } >"$work/buildah-$tag.log" 2>&1 \
    || fail "buildah $tag" "$work/buildah-$tag.log"
}
timed() { # file cmd… : append the wall time of cmd to file
  local f=$1 t; shift; t=$(now); "$@"; elapsed "$t" "$(now)" >>"$f"
}

# The RUN commands alone: each run with chroot in a fresh copy of the base rootfs,
# with the Dockerfile's ENV and WORKDIR, /dev and /proc mounted, host DNS.
"$CAIRN" parse "$ctx/Dockerfile" >"$work/parsed.json"
cat >"$work/runs.py" <<'EOF'
import json, os, subprocess, sys, time
root, parsed = sys.argv[1], json.load(open(sys.argv[2]))
env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root"}
wd, total = "/", 0.0
for ins in parsed:
    op, args = ins["instruction"], ins["args"]
    if op == "ENV":
        env.update(zip(args[0::2], args[1::2]))
    elif op == "WORKDIR":
        wd = os.path.join(wd, args[0])
        os.makedirs(root + wd, exist_ok=True)
    elif op == "RUN":
        t = time.monotonic()
        subprocess.run(["chroot", root, "/bin/sh", "-c", f"cd {wd} && {args[0]}"], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        total += time.monotonic() - t
print(f"{total:.3f}")
EOF
run_alone() { # -> appends the sum of the RUN times to $work/ra
  rm -rf "$work/chroot"; cp -a "$DEB/rootfs" "$work/chroot"; cp /etc/resolv.conf "$work/chroot/etc/resolv.conf"
  unshare --mount --propagation private --fork -- sh -c \
    'mount --rbind /dev "$1/dev" && mount -t proc proc "$1/proc" && python3 "$2/runs.py" "$1" "$2/parsed.json"' \
    sh "$work/chroot" "$work" >>"$work/ra"
  # the mounts lived in the private namespace only; never rm -rf a mounted /dev
  if mountpoint -q "$work/chroot/dev" || mountpoint -q "$work/chroot/proc"; then echo "chroot still mounted"; KEEP=1; exit 1; fi
  du -sb "$work/chroot" | cut -f1 >"$work/chroot-bytes"
  rm -rf "$work/chroot"
}

for f in cc cw cl ch bc bw bl bh ra; do : >"$work/$f"; done
for i in $(seq "$RUNS"); do
  echo "run $i/$RUNS…" >&2
  rm -rf "$work/cstate" "$work/hstate"
  timed "$work/cc" cairn_build "$work/cstate" "c$i" "ccache-$i"
  timed "$work/cw" cairn_build "$work/cstate" "w$i" "ccache-w$i"
  timed "$work/cl" cairn_build "$work/cstate" "l$i" "ccache-$i"
  timed "$work/ch" cairn_build "$work/hstate" "h$i" "ccache-$i"
  for t in l h; do grep -q "Using cached image" "$work/cairn-$t$i.log" || fail "cairn $t$i was not a full hit" "$work/cairn-$t$i.log"; done
  buildah "${bstore[@]}" rmi -a -f >/dev/null 2>&1 || true
  timed "$work/bc" buildah_build "c$i" "bcache-$i"
  timed "$work/bw" buildah_build "w$i" "bcache-w$i" --no-cache
  timed "$work/bl" buildah_build "l$i" "bcache-$i"
  buildah "${bstore[@]}" rmi -a -f >/dev/null 2>&1 || true
  timed "$work/bh" buildah_build "h$i" "bcache-$i"
  for t in l h; do
    n=$(grep -c -- '--> Using cache' "$work/buildah-$t$i.log" || true)
    [ "$n" -ge 10 ] || fail "buildah $t$i used the cache for $n of 10 steps" "$work/buildah-$t$i.log"
  done
  run_alone
done

declare -A m
for f in cc cw cl ch bc bw bl bh ra; do m[$f]=$(median <"$work/$f"); done
digest() { skopeo inspect --tls-verify=false "docker://$reg/bench/$1" | python3 -c 'import json,sys;print(json.load(sys.stdin)["Digest"])'; }
layers() { skopeo inspect --raw --tls-verify=false "docker://$reg/bench/$1" | python3 -c 'import json,sys;l=json.load(sys.stdin)["layers"];print(len(l), sum(x["size"] for x in l))'; }
read -r cn cz < <(layers cairn:c1); read -r bn bz < <(layers buildah:c1)
bver=$(buildah --version | awk '{print $3}')
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB RAM, Linux $(uname -r)"
echo "workload: $ctx on Debian bookworm minbase; image $(python3 -c "print(f'{$(cat "$work/chroot-bytes")/1e6:.0f}')") MB unpacked;" \
  "cairn $cn layers / $(python3 -c "print(f'{$cz/1e6:.1f}')") MB compressed, buildah $bn layers / $(python3 -c "print(f'{$bz/1e6:.1f}')") MB"
echo "runs: $RUNS (median seconds; every build pushes its image)"
printf '%-16s %9s %9s %10s %13s\n' "" cold warm "local hit" "registry hit"
printf '%-16s %9s %9s %10s %13s\n' "cairn" "${m[cc]}" "${m[cw]}" "${m[cl]}" "${m[ch]}"
printf '%-16s %9s %9s %10s %13s\n' "buildah $bver" "${m[bc]}" "${m[bw]}" "${m[bl]}" "${m[bh]}"
python3 - "${m[cc]}" "${m[cw]}" "${m[cl]}" "${m[ch]}" "${m[bc]}" "${m[bw]}" "${m[bl]}" "${m[bh]}" "${m[ra]}" <<'EOF'
import sys
cc, cw, cl, ch, bc, bw, bl, bh, ra = map(float, sys.argv[1:])
print(f"{'buildah/cairn':16} {bc/cc:8.1f}x {bw/cw:8.1f}x {bl/cl:9.1f}x {bh/ch:12.1f}x")
print(f"RUN commands alone (chroot, sum of the 6 RUN steps): {ra:.3f} s")
print(f"cold overhead (cold - RUN alone): cairn {cc-ra:.3f} s, buildah {bc-ra:.3f} s")
ok = lambda b: "yes" if b else "NO"
print(f"target registry hit >= 10x faster than buildah's: {ok(bh/ch >= 10)} ({bh/ch:.1f}x); under 1 s: {ok(ch < 1)} ({ch:.3f} s)")
print(f"target cold overhead below buildah's: {ok(cc-ra < bc-ra)}")
EOF
echo "cairn registry hit gives the cold run's image: $(digest cairn:c1) = $(digest cairn:h1)"
echo "buildah registry hit gives the cold run's image: $(digest buildah:c1) = $(digest buildah:h1)"
