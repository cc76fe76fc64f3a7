#!/usr/bin/env bash
# berth's demo lab (as root): one Marathon-style task run by berth-executor, the way a node
# runs it, on a small LAN made of namespaces on this machine. Nothing touches the real
# network: a "LAN" netns holds a bridge and a real DHCP server (dnsmasq); a "host" netns
# holds the node's NIC (one end of a veth into the LAN). berth-executor runs in the "host"
# netns and starts the task as a runc container with
#   - its own netns with a macvlan eth0 on the NIC, addressed by DHCP by berth-init,
#   - a tc limit of 20 Mbit/s in both directions (label berth.bandwidth),
#   - a 64 MB /home of its own (a loop-file volume; LVM on real nodes),
#   - busybox httpd as its command, serving /home/www.
# The demo shows the task's status updates, fetches the page from the LAN, looks inside,
# stops the task with SIGTERM and checks that nothing is left. Bounded waits; everything it
# made is removed on exit, even on failure.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "scripts/demo-lab.sh: run as root (namespaces, containers, loop devices)" >&2
  exit 1
fi
bash scripts/deps.sh >/dev/null
command -v cargo >/dev/null 2>&1 || { echo "demo-lab: cargo not found; install Rust (rustup) first" >&2; exit 1; }

echo "== building berth-executor and the static berth-init (musl)"
cargo build --locked -q -p berth-executor
cargo build --locked -q --target x86_64-unknown-linux-musl -p berth-init
bin="$PWD/target/debug"
init="$PWD/target/x86_64-unknown-linux-musl/debug/berth-init"

tag="bdemo$$"
lan="$tag-lan"
host="$tag-host"
dir=$(mktemp -d /tmp/berth-demo-lab.XXXXXX)
exe_pid=""
cleanup() {
  set +e
  if [ -n "$exe_pid" ] && kill -0 "$exe_pid" 2>/dev/null; then
    kill -TERM "$exe_pid"
    for _ in $(seq 100); do kill -0 "$exe_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$exe_pid" 2>/dev/null
  fi
  [ -f "$dir/dnsmasq.pid" ] && kill "$(cat "$dir/dnsmasq.pid")" 2>/dev/null
  for c in $(runc --root "$dir/runc" list -q 2>/dev/null); do runc --root "$dir/runc" delete -f "$c"; done
  grep " $dir" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
  ip netns del "$lan" 2>/dev/null
  ip netns del "$host" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT

echo "== the LAN: netns $lan (bridge, 10.78.0.1/24, dnsmasq) and the node's NIC nic0 in netns $host"
ip netns add "$lan"
ip netns add "$host"
ip -n "$lan" link add br0 type bridge
ip -n "$lan" link add lan0 type veth peer name nic0 netns "$host"
ip -n "$lan" link set lan0 master br0 up
ip -n "$lan" addr add 10.78.0.1/24 dev br0
ip -n "$lan" link set br0 up
ip -n "$lan" link set lo up
ip -n "$host" link set nic0 up
ip -n "$host" link set lo up
ip netns exec "$lan" dnsmasq --conf-file=/dev/null --port=0 --no-resolv --no-hosts \
  --user=root --group=root --interface=br0 --bind-interfaces --dhcp-authoritative \
  --dhcp-range=10.78.0.100,10.78.0.150,255.255.255.0,120s --dhcp-option=option:router,10.78.0.1 \
  --no-ping --log-dhcp --log-facility="$dir/dnsmasq.log" --pid-file="$dir/dnsmasq.pid" \
  --dhcp-leasefile="$dir/leases"

echo "== the image: a busybox root filesystem (no libc: berth-init is static)"
root="$dir/images/busybox"
mkdir -p "$root"/{bin,etc,proc,sys,dev,tmp,home,root,run}
cp /bin/busybox "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list); do [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"; done
echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
echo "root:x:0:" >"$root/etc/group"

cat >"$dir/task.json" <<'JSON'
{
  "name": "demo-web",
  "task_id": {"value": "demo-web.8f6c1e2a"},
  "agent_id": {"value": "demo-agent"},
  "resources": [
    {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}},
    {"name": "mem", "type": "SCALAR", "scalar": {"value": 64}},
    {"name": "home", "type": "SCALAR", "scalar": {"value": 64}}
  ],
  "command": {"value": "mkdir -p /home/www && echo \"hello from $HOSTNAME ($MESOS_TASK_ID), /home is $BERTH_HOME_MB MB\" >/home/www/index.html && exec httpd -f -p 80 -h /home/www"},
  "labels": {"labels": [
    {"key": "berth.image", "value": "busybox"},
    {"key": "berth.bandwidth", "value": "20mbit"}
  ]},
  "kill_policy": {"grace_period": {"nanoseconds": 3000000000}}
}
JSON
echo "== the task (what Marathon would send in LAUNCH):"
sed 's/^/   /' "$dir/task.json"

mkdir -p "$dir/sandbox"
echo "== berth-executor run --task task.json --net-parent nic0 (in netns $host); status updates:"
env BERTH_EXECUTOR_INIT="$init" \
  BERTH_EXECUTOR_IMAGES="$dir/images" \
  BERTH_EXECUTOR_STATE_DIR="$dir/state" \
  BERTH_EXECUTOR_RUN_DIR="$dir/run" \
  BERTH_EXECUTOR_RUNTIME_ROOT="$dir/runc" \
  BERTH_EXECUTOR_IMAGE_CACHE="$dir/image-cache" \
  BERTH_EXECUTOR_CGROUP_PARENT="$tag" \
  BERTH_EXECUTOR_VOLUME_BACKEND=loopfile \
  BERTH_EXECUTOR_VOLUME_DIR="$dir/volumes" \
  RUST_LOG=warn \
  nsenter --net="/run/netns/$host" -- \
  "$bin/berth-executor" run --task "$dir/task.json" --sandbox "$dir/sandbox" --net-parent nic0 \
  >"$dir/updates" 2>"$dir/executor.log" &
exe_pid=$!

ip_addr=""
for _ in $(seq 300); do
  if grep -q '"TASK_RUNNING"' "$dir/updates" 2>/dev/null; then
    ip_addr=$(grep '"TASK_RUNNING"' "$dir/updates" | head -1 | grep -o '"ip":"[0-9.]*"' | cut -d'"' -f4)
    break
  fi
  kill -0 "$exe_pid" 2>/dev/null || break
  sleep 0.1
done
sed 's/^/   /' "$dir/updates"
if [ -z "$ip_addr" ]; then
  echo "demo-lab: the task did not reach TASK_RUNNING with an address; executor log:" >&2
  cat "$dir/executor.log" "$dir/sandbox/stderr" >&2 || true
  exit 1
fi
echo "== TASK_RUNNING with the address $ip_addr (leased by dnsmasq: $(cut -d' ' -f3,4 "$dir/leases"))"

echo "== from the LAN: GET http://$ip_addr/"
page=""
for _ in $(seq 50); do
  page=$(printf 'GET / HTTP/1.0\r\n\r\n' | ip netns exec "$lan" socat -T 2 - "TCP:$ip_addr:80" 2>/dev/null | tail -1) && [ -n "$page" ] && break
  sleep 0.1
done
echo "   $page"
if [ -z "$page" ]; then
  echo "demo-lab: the page did not answer; the task's stderr:" >&2
  cat "$dir/sandbox/stderr" >&2 || true
  exit 1
fi

cid=$(runc --root "$dir/runc" list -q | head -1)
echo "== inside the container $cid (runc exec):"
runc --root "$dir/runc" exec "$cid" /bin/sh -c '
  echo "   PID 1: $(cat /proc/1/cmdline | tr "\0" " ")"
  echo "   eth0:  $(ip -4 -o addr show eth0 | awk "{print \$4}")"
  echo "   /home: $(df -m /home | awk "NR==2 {print \$2 \" MB, \" \$1}")"
  echo "   whoami: $(id -un), capabilities of the command: $(grep CapEff /proc/self/status | cut -f2)"'
pid1=$(runc --root "$dir/runc" state "$cid" | grep -o '"pid": *[0-9]*' | grep -o '[0-9]*$')
echo "   tc on eth0 (seen from the host): $(nsenter --net="/proc/$pid1/ns/net" tc qdisc show dev eth0 | grep -o 'tbf.*rate [^ ]*' | head -1)"

echo "== SIGTERM to berth-executor (like ^C): it kills the task and waits for TASK_KILLED"
kill -TERM "$exe_pid"
for _ in $(seq 150); do kill -0 "$exe_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$exe_pid" 2>/dev/null; then
  echo "demo-lab: berth-executor did not stop" >&2
  exit 1
fi
wait "$exe_pid" || true
exe_pid=""
tail -n +3 "$dir/updates" | sed 's/^/   /'
grep -q '"TASK_KILLED"' "$dir/updates" || { echo "demo-lab: no TASK_KILLED" >&2; exit 1; }

left=()
[ -z "$(runc --root "$dir/runc" list -q 2>/dev/null)" ] || left+=("runc containers")
grep -q " $dir" /proc/self/mountinfo && left+=("mounts")
losetup -a | grep -q "$dir" && left+=("loop devices")
ip netns list | grep -q "^$cid" && left+=("the task netns")
[ -z "$(find "$dir/volumes" -type f 2>/dev/null)" ] || left+=("volume files: $(find "$dir/volumes" -type f)")
grep -q "DHCPRELEASE" "$dir/dnsmasq.log" || left+=("the DHCP lease (no RELEASE seen)")
if [ ${#left[@]} -gt 0 ]; then
  echo "demo-lab: left behind: ${left[*]}" >&2
  exit 1
fi
echo "== nothing left behind: no container, mount, loop device, task netns or volume; lease released"
echo "== demo lab OK"
