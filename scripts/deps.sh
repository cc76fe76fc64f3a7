#!/usr/bin/env bash
# Installs what berth's tests, demo and benchmarks need on a Debian machine (as root).
# Idempotent and quick when everything is already there.
set -euo pipefail

apt_packages=(
  # containers and inits (the runtime, and the anchors the benchmarks compare with)
  runc crun tini dumb-init busybox-static supervisor s6
  # the network lab: namespaces, a real DHCP server, traffic measurement
  iproute2 dnsmasq-base iperf3 iptables socat
  # volumes: filesystems, LVM, thin pools, I/O benchmarks
  e2fsprogs xfsprogs lvm2 thin-provisioning-tools fio util-linux
  # the VM tier: Debian's kernel under qemu (device-mapper, 8021q, IP_VS live there)
  qemu-system-x86 linux-image-amd64 kmod
  # LVS: ipvsadm only cross-checks the IPVS table berth writes over netlink (VM tier);
  # keepalived is the LVS benchmark's anchor (a full config reload)
  ipvsadm keepalived
  # process tools the tests and benchmarks use
  procps psmisc hyperfine python3 python3-pip curl
  # berth-agent: promtool validates the /metrics exposition (the agent_metrics test)
  prometheus
  # passwordless login (init login: section): the real sshd and ssh-keygen/ssh client
  openssh-server openssh-client
  # database authorization (dbauth tests): a real MariaDB started by the tests
  mariadb-server mariadb-client
  # the static berth-init (musl target; musl-gcc for C code such as ring, and the
  # musl-linked program of the init_images test)
  musl-tools
  # init_images: a Debian minbase root and a musl-libc image
  debootstrap musl
  # the package (scripts/package.sh) and its install test: systemd-analyze verify
  systemd
)

missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v vng >/dev/null 2>&1; then
  echo "deps: installing virtme-ng"
  python3 -m pip install -q virtme-ng 2>&1 | grep -v "Running pip as the 'root' user" || true
  command -v vng >/dev/null 2>&1 || { echo "deps: vng not on PATH after pip install" >&2; exit 1; }
fi

rustup component list --installed 2>/dev/null | grep -q clippy || rustup component add clippy rustfmt
rustup target list --installed 2>/dev/null | grep -q x86_64-unknown-linux-musl || rustup target add x86_64-unknown-linux-musl
# scripts/package.sh builds the .deb with cargo-deb (tests/tests/install_deb.rs runs it)
command -v cargo-deb >/dev/null 2>&1 || cargo install cargo-deb --locked --version '^3' --quiet
