#!/usr/bin/env bash
# The VM tier: what this host's kernel lacks (device-mapper/LVM thin, 8021q VLANs, IP_VS).
#
# Builds every test target named `vm_*` of every workspace package that has a `vm-tier`
# feature, boots ONE VM with Debian's kernel (virtme-ng, software emulation, ~25 s), runs all
# of them inside it one after another, and fails if any fails. The host's root filesystem is
# visible read-only in the VM; the work dir is shared read-write for results (BERTH_VM_WORK),
# and BERTH_VM_SCRATCH is a tmpfs inside the VM for loop files.
set -euo pipefail
cd "$(dirname "$0")/.."

kernel=$(ls /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1)
[ -n "$kernel" ] || { echo "vm-tier: no kernel in /boot (scripts/deps.sh installs linux-image-amd64)" >&2; exit 1; }

pkgs=$(cargo metadata --no-deps --format-version 1 | python3 -c '
import json, sys
for p in json.load(sys.stdin)["packages"]:
    if "vm-tier" in p["features"]:
        print(p["name"])')
if [ -z "$pkgs" ]; then
  echo "vm-tier: no package has a vm-tier feature; nothing to run"
  exit 0
fi

work=$(mktemp -d /tmp/berth-vm.XXXXXX)
trap 'rm -rf "$work"' EXIT

args=()
for p in $pkgs; do args+=(-p "$p" --features "$p/vm-tier"); done
# The end-to-end VM tests (berth-tests' vm_lvs) run the workspace's binaries and the static init.
cargo build --locked --workspace --bins
cargo build --locked --target x86_64-unknown-linux-musl -p berth-init
cargo test --locked "${args[@]}" --test 'vm_*' --no-run --message-format=json >"$work/build.json"
python3 - "$work/build.json" >"$work/tests.list" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") \
       and m["target"]["name"].startswith("vm_") and "test" in m["target"]["kind"]:
        print(m["executable"])
PY
# BERTH_VM_ONLY=vm_lvs (a pattern) runs only the matching test binaries.
if [ -n "${BERTH_VM_ONLY:-}" ]; then
  grep -- "/${BERTH_VM_ONLY}" "$work/tests.list" >"$work/only.list" || true
  mv "$work/only.list" "$work/tests.list"
fi
[ -s "$work/tests.list" ] || { echo "vm-tier: packages $pkgs have the feature but no vm_* tests" >&2; exit 1; }
echo "vm-tier: running in one VM:"; sed 's/^/  /' "$work/tests.list"

cat >"$work/inside.sh" <<INSIDE
#!/bin/bash
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export BERTH_VM_TIER=1 BERTH_VM_WORK=$work RUST_BACKTRACE=1
modprobe -a dm-mod dm-thin-pool dm-snapshot loop 8021q ip_vs ip_vs_rr ip_vs_wrr || true
# Fast scratch space for loop files (the shared work dir is 9p with sync: ~8 MB/s). tmpfs
# pages are only used as written, so sparse PVs cost what the tests write.
export BERTH_VM_SCRATCH=/tmp/berth-vm-scratch
mkdir -p "\$BERTH_VM_SCRATCH" && mount -t tmpfs -o size=1200M tmpfs "\$BERTH_VM_SCRATCH"
rc=0
while read -r exe; do
  echo "vm-tier: == \$exe"
  (cd "\$(dirname "\$exe")" && "\$exe" --test-threads=1) || rc=1
done <"$work/tests.list"
echo \$rc >"$work/rc"
INSIDE
chmod +x "$work/inside.sh"

echo 1 >"$work/rc"
# qemu opens /proc/self/fd/1 and /proc/self/fd/2 as files (O_TRUNC): when our output is
# redirected to a log file, that would wipe everything printed before. A pipe is immune.
timeout 1500 vng --run "$kernel" --disable-kvm --memory 2G --cpus 2 --rwdir "$work" --exec "$work/inside.sh" 2>&1 | cat || true
rc=$(cat "$work/rc")
[ "$rc" = 0 ] && echo "vm-tier: all passed" || echo "vm-tier: FAILED" >&2
exit "$rc"
