#!/usr/bin/env bash
# Every test tier of berth, in order; fails on the first failing tier.
#   1. formatting and lints   2. unit + host-privileged tests (root)   3. the VM tier
#   4. the demo (scripts/demo.sh), so the README's first command keeps working
# Run it as root on a Debian machine; it installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "scripts/test.sh: run as root; the host tier makes netns, loop devices and runc containers" >&2
  exit 1
fi
scripts/deps.sh
echo "== fmt";    cargo fmt --all -- --check
echo "== clippy"; cargo clippy --locked --workspace --all-targets -- -D warnings
echo "== build (the e2e tests run the binaries from target/debug)"
cargo build --locked --workspace --bins
echo "== build the static berth-init the executor mounts (musl)"
cargo build --locked --target x86_64-unknown-linux-musl -p berth-init
echo "== tests (unit + host tier)"
cargo test --locked --workspace
echo "== VM tier"
scripts/vm-tier.sh
echo "== demo"
scripts/demo.sh
echo "== all tiers passed"
