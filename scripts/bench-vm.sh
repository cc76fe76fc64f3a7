#!/usr/bin/env bash
# Runs a VM-tier benchmark in one VM boot (Debian's kernel under virtme-ng, software
# emulation): `scripts/bench-vm.sh [NAME] [cargo bench args]`. NAME defaults to the volume
# benchmark (tests/bench/lvm.rs: device-mapper and LVM thin, about 5 minutes); `lvs` is the
# LVS one (tests/bench/lvs.rs: ip_vs; with `--profile dev` it runs the binaries of `cargo
# build --workspace --bins`). The other arguments go to `cargo bench` (e.g. `--profile dev`:
# the lvm figures are the lvm tools', fio's and cp's, and the release build with LTO takes
# long). Prints the figures.
set -euo pipefail
cd "$(dirname "$0")/.."

kernel=$(ls /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1)
[ -n "$kernel" ] || { echo "bench-vm: no kernel in /boot (scripts/deps.sh installs linux-image-amd64)" >&2; exit 1; }

work=$(mktemp -d /tmp/berth-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
bench=lvm
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then bench=$1; shift; fi
cargo bench --locked -p berth-tests --bench "$bench" "$@" --no-run --message-format=json >"$work/build.json"
exe=$(python3 - "$work/build.json" "$bench" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == sys.argv[2]:
        print(m["executable"])
PY
)
[ -n "$exe" ] || { echo "bench-vm: the $bench bench did not build" >&2; exit 1; }

cat >"$work/inside.sh" <<INSIDE
#!/bin/bash
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export BERTH_VM_TIER=1 BERTH_VM_WORK=$work BERTH_VM_SCRATCH=/tmp/berth-bench-scratch
modprobe -a dm-mod dm-thin-pool dm-snapshot loop overlay ip_vs ip_vs_rr ip_vs_wrr || true
mkdir -p "\$BERTH_VM_SCRATCH" && mount -t tmpfs -o size=3000M tmpfs "\$BERTH_VM_SCRATCH"
# The VM's root is the host's tree over 9p without caching: every new process page-faults
# its code from the host at 5-8 ms a fault, which a node (binaries in its page cache) never
# pays. So everything the benchmarks exec runs from a tmpfs copy: the bench itself (under
# deps/, so that its binary() finds the copies of berth-agent, berth-init, ... beside it),
# the host tools both sides exec (keepalived, ipvsadm, busybox, test, unshare, ip: first in
# PATH) and the shared libraries of all of them (LD_LIBRARY_PATH). Only the dynamic loader
# itself is still read over 9p, by berth's processes and the anchor's alike.
bin=/tmp/berth-bench-bin
mkdir -p \$bin && mount -t tmpfs -o size=1000M tmpfs \$bin && mkdir \$bin/deps \$bin/path \$bin/lib
cp "$exe" \$bin/deps/
for b in "$(dirname "$(dirname "$exe")")"/berth-*; do [ -x "\$b" ] && [ -f "\$b" ] && cp "\$b" \$bin/; done
for t in keepalived ipvsadm busybox test unshare ip; do p=\$(type -P \$t) && cp "\$p" \$bin/path/; done
for f in \$bin/deps/* \$bin/berth-* \$bin/path/*; do ldd "\$f" 2>/dev/null | awk '/=> \\//{print \$3}'; done | sort -u | xargs -r cp -t \$bin/lib
export PATH=\$bin/path:\$PATH LD_LIBRARY_PATH=\$bin/lib
"\$bin/deps/$(basename "$exe")" 2>&1 | tee "$work/out.txt"
echo \${PIPESTATUS[0]} >"$work/rc"
INSIDE
chmod +x "$work/inside.sh"
echo 1 >"$work/rc"
# qemu opens /proc/self/fd/1 and /proc/self/fd/2 as files (O_TRUNC): when our output is
# redirected to a log file, that would wipe everything printed before. A pipe is immune.
timeout 1500 vng --run "$kernel" --disable-kvm --memory 4G --cpus 2 --rwdir "$work" --exec "$work/inside.sh" 2>&1 | cat || true
exit "$(cat "$work/rc")"
