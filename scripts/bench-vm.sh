#!/usr/bin/env bash
# Runs the volume benchmark (tests/bench/lvm.rs) in one VM boot: device-mapper and LVM thin
# live only in the VM tier (Debian's kernel under virtme-ng, software emulation). Prints the
# figures; takes about 5 minutes. Arguments go to `cargo bench` (e.g. `--profile dev`: the
# figures are the lvm tools', fio's and cp's, and the release build with LTO takes long).
set -euo pipefail
cd "$(dirname "$0")/.."

kernel=$(ls /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1)
[ -n "$kernel" ] || { echo "bench-vm: no kernel in /boot (scripts/deps.sh installs linux-image-amd64)" >&2; exit 1; }

work=$(mktemp -d /tmp/berth-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
cargo bench --locked -p berth-tests --bench lvm "$@" --no-run --message-format=json >"$work/build.json"
exe=$(python3 - "$work/build.json" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "lvm":
        print(m["executable"])
PY
)
[ -n "$exe" ] || { echo "bench-vm: the lvm bench did not build" >&2; exit 1; }

cat >"$work/inside.sh" <<INSIDE
#!/bin/bash
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export BERTH_VM_TIER=1 BERTH_VM_WORK=$work BERTH_VM_SCRATCH=/tmp/berth-bench-scratch
modprobe -a dm-mod dm-thin-pool dm-snapshot loop overlay || true
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
