#!/usr/bin/env bash
# Builds berth's Debian package (package `berth`, metadata in agent/Cargo.toml):
#   /usr/bin/berth-agent, /usr/libexec/berth/{berth-executor,berth-init (static, musl)},
#   /usr/sbin/berth-vol, every unit in packaging/systemd/, every packaging/*.toml as a
#   conffile in /etc/berth/, man pages and bash/zsh/fish completions generated from the
#   clap definitions (packaging/gen-docs), docs and packaging/examples/.
#
#   scripts/package.sh                  release build (what nodes get)
#   scripts/package.sh --profile dev    the dev build (what tests/tests/install_deb.rs installs)
#   scripts/package.sh --no-build ...   package what is already built for that profile
#   scripts/package.sh --out DIR        where the .deb goes (default target/debian)
#
# The package version is the binaries' own (`berth-agent --version`: workspace version
# plus +git<N>.g<hash>, see packaging/version.rs) with Debian revision 1. Prints the
# .deb's path as its last line.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
build=1
out=target/debian
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "scripts/package.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
done
musl=x86_64-unknown-linux-musl
# Cargo's output dir of a profile: dev builds land in debug/.
pdir=$profile
[ "$profile" = dev ] && pdir=debug
target=${CARGO_TARGET_DIR:-target}

if ! command -v cargo-deb >/dev/null 2>&1; then
  echo "package: installing cargo-deb"
  cargo install cargo-deb --locked --version '^3' --quiet
fi
rustup target list --installed 2>/dev/null | grep -q "$musl" || rustup target add "$musl"

if [ "$build" = 1 ]; then
  cargo build --locked --profile "$profile" -p berth-agent -p berth-executor -p berth-lvm --bins
  cargo build --locked --profile "$profile" --target "$musl" -p berth-init
  # The generator is a build tool: always its dev build (it only prints text).
  cargo build --locked -p berth-gen-docs --quiet
fi
[ -x "$target/debug/berth-gen-docs" ] || {
  echo "package: $target/debug/berth-gen-docs is missing (cargo build -p berth-gen-docs)" >&2; exit 1; }

stage="$target/$pdir/berth-pkg"
rm -rf "$stage"
mkdir -p "$stage"
init="$target/$musl/$pdir/berth-init"
[ -x "$init" ] || { echo "package: $init is missing (build it, or drop --no-build)" >&2; exit 1; }
# The executor refuses a dynamically linked init; so does the package.
if readelf -l "$init" | grep -q 'Requesting program interpreter'; then
  echo "package: $init is dynamically linked" >&2; exit 1
fi
cp "$init" "$stage/berth-init"
"$target/debug/berth-gen-docs" "$stage" >/dev/null
gzip -9n "$stage"/man/*

version=$("$target/$pdir/berth-agent" --version | awk '{print $2}')
[ -n "$version" ] || { echo "package: no version from berth-agent --version" >&2; exit 1; }
extra=()
# A dev package is for tests: light compression (its binaries are large).
[ "$profile" = dev ] && extra+=(--fast)
mkdir -p "$out"
cargo deb --no-build --quiet -p berth-agent --profile "$profile" \
  --deb-version "$version-1" --output "$out" "${extra[@]}"
