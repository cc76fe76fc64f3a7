#!/usr/bin/env bash
# berth's demo (as root), in two parts:
# 1. berth-init: builds it and runs it as PID 1 of a new PID namespace with a small process
#    tree that leaves orphans behind. Shows them reaped, a signal forwarded from outside,
#    and berth-init exiting with the app's exit code.
# 2. the lab (scripts/demo-lab.sh): a Marathon-style task run by berth-executor as a runc
#    container with a DHCP address on a LAN made of namespaces, a bandwidth limit and its
#    own /home volume; fetched from the LAN, stopped, and checked that nothing is left.
# Terminates by itself (bounded waits) and removes everything it made.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "scripts/demo.sh: run as root (it creates a PID namespace)" >&2
  exit 1
fi
for tool in unshare ps; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq util-linux procps >/dev/null
    break
  fi
done
command -v cargo >/dev/null 2>&1 || { echo "demo: cargo not found; install Rust (rustup) first" >&2; exit 1; }

echo "== building berth-init (release)"
cargo build --release --locked -p berth-init
init="$PWD/target/release/berth-init"
ls -l "$init"

dir=$(mktemp -d /tmp/berth-init-demo.XXXXXX)
outer=""
cleanup() {
  if [ -n "$outer" ] && kill -0 "$outer" 2>/dev/null; then
    kill -KILL "$outer" 2>/dev/null || true   # --kill-child takes the namespace with it
    wait "$outer" 2>/dev/null || true
  fi
  rm -rf "$dir"
}
trap cleanup EXIT

# The "app": a shell that forks orphans (subshells that background a sleep and exit, so
# the sleeps are reparented to PID 1), lists the process table, then waits for signals.
cat >"$dir/app.sh" <<'APP'
#!/bin/sh
dir=$1
echo "[app] I am PID $$; PID 1 is '$(cat /proc/1/comm)'"
for i in 1 2 3 4 5; do ( sleep 0.$i & ); done
echo "[app] left 5 orphaned sleeps behind; their parent is now PID 1:"
ps -o pid,ppid,stat,args | sed 's/^/[app]   /'
sleep 1
echo "[app] one second later, zombies in the namespace: $(ps -o stat= | grep -c '^Z' || true)"
ps -o pid,ppid,stat,args | sed 's/^/[app]   /'
trap 'echo "[app] got SIGUSR1 (forwarded by berth-init)"' USR1
trap 'echo "[app] got SIGTERM (forwarded by berth-init); exiting with code 3"; exit 3' TERM
echo ready >"$dir/ready"
while :; do sleep 0.1; done
APP
chmod +x "$dir/app.sh"

echo "== berth-init -w as PID 1 of a new PID namespace (-w: report each orphan it reaps)"
unshare --pid --fork --mount-proc --kill-child -- "$init" -w -- "$dir/app.sh" "$dir" 2>&1 &
outer=$!

for _ in $(seq 200); do [ -e "$dir/ready" ] && break; sleep 0.05; done
[ -e "$dir/ready" ] || { echo "demo: the app never got ready" >&2; exit 1; }
pid1=$(tr -d ' ' <"/proc/$outer/task/$outer/children")
echo "== from the host: berth-init is pid $pid1 here; sending SIGUSR1, then SIGTERM"
kill -USR1 "$pid1"
sleep 0.3
kill -TERM "$pid1"

code=0
wait "$outer" || code=$?
outer=""
echo "== berth-init exited with code $code (the app's code: 3)"
left=$(ps -eo args | grep -c "[b]erth-init-demo" || true)
echo "== processes left behind: $left"
[ "$code" = 3 ] && [ "$left" = 0 ] || { echo "demo: FAILED" >&2; exit 1; }
echo "== berth-init demo OK"
echo
echo "== part 2: the lab (scripts/demo-lab.sh)"
exec bash scripts/demo-lab.sh
