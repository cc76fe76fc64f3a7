#!/usr/bin/env bash
# Runs a VM-tier benchmark in one VM boot (Debian's kernel under virtme-ng, software
# emulation): by default the volume one (tests/bench/lvm.rs: device-mapper and LVM thin,
# about 5 minutes); `scripts/bench-vm.sh lvs dev` the LVS one (tests/bench/lvs.rs: ip_vs;
# its dev profile runs the binaries of `cargo build --workspace --bins`). Prints the figures.
set -euo pipefail
cd "$(dirname "$0")/.."

kernel=$(ls /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1)
[ -n "$kernel" ] || { echo "bench-vm: no kernel in /boot (scripts/deps.sh installs linux-image-amd64)" >&2; exit 1; }

work=$(mktemp -d /tmp/berth-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
bench=${1:-lvm}
profile=${2:-bench}
cargo bench --locked -p berth-tests --bench "$bench" --profile "$profile" --no-run --message-format=json >"$work/build.json"
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
"$exe" 2>&1 | tee "$work/out.txt"
echo \${PIPESTATUS[0]} >"$work/rc"
INSIDE
chmod +x "$work/inside.sh"
echo 1 >"$work/rc"
# qemu opens /proc/self/fd/1 and /proc/self/fd/2 as files (O_TRUNC): when our output is
# redirected to a log file, that would wipe everything printed before. A pipe is immune.
timeout 1500 vng --run "$kernel" --disable-kvm --memory 4G --cpus 2 --rwdir "$work" --exec "$work/inside.sh" 2>&1 | cat || true
exit "$(cat "$work/rc")"
