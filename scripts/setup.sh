#!/usr/bin/env bash
# Installs everything finvirt's build, tests and demo need on a fresh Debian 12 machine:
# the Debian packages and the guest kernel (Debian linux-image-cloud-amd64, unpacked into
# $FINVIRT_KERNEL_DIR). Idempotent: a second run only checks.
set -euo pipefail

PKGS=(qemu-system-x86 qemu-utils ovmf swtpm busybox-static cpio lz4 btrfs-progs nftables
      iproute2 debootstrap runc iperf3 fio ruby e2fsprogs xz-utils ca-certificates make git curl)
KERNEL_DIR=${FINVIRT_KERNEL_DIR:-/var/cache/finvirt/kernel}

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: must run as root (apt-get, loop devices, network namespaces)" >&2
  exit 1
fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Guest kernel: the Debian cloud kernel package, unpacked (not installed) so the host's own
# kernel is untouched. linux-image-cloud-amd64 is a metapackage; fetch what it depends on.
if ! ls "$KERNEL_DIR"/boot/vmlinuz-* >/dev/null 2>&1; then
  pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/{print $2; exit}')
  [ -n "$pkg" ] || { echo "setup: cannot resolve linux-image-cloud-amd64 (apt-get update?)" >&2; exit 1; }
  echo "setup: fetching guest kernel $pkg into $KERNEL_DIR"
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download -q "$pkg")
  mkdir -p "$KERNEL_DIR"
  dpkg-deb -x "$tmp"/*.deb "$KERNEL_DIR"
  rm -rf "$tmp"
fi
echo "setup: ok (kernel: $(ls "$KERNEL_DIR"/boot/vmlinuz-* | head -1))"
