#!/usr/bin/env bash
# Build (or find in the cache) the Debian guest image for the QEMU VM route.
#
#   image.sh [--print] [--force]
#
# Prints the image directory on stdout: $TESTENV_VM_CACHE/images/HASH with
#   root.raw    ext4 root file system (sparse, 4 GiB), booted as /dev/vda
#   vmlinuz, initrd.img   for QEMU's direct kernel boot
#   cmdline     the kernel command line the image expects
# HASH covers everything that goes into the image: this script, the suite, the package list, the
# host's node binary, the project's systemd/ units and the public ssh key. A cached image is reused
# (~0 s); a cold build takes ~2 min (debootstrap from the mirror apt uses, found from /etc/apt).
#
# The guest: Debian (host's suite, bookworm) minbase + systemd, dbus, udev, linux-image-amd64,
# openssh-server, iproute2, etcd-server, e2fsprogs, gdisk. Node is the host's node binary copied
# to /usr/bin/node; the project is not in the image: boot.sh shares the checkout read-only over
# virtio-9p, mounted at /project (/usr/lib/flotilla -> /project), and flotilla, fleetctl and
# coreos-cloudinit on PATH run /project/bin/flotilla (the project's dist/, "npm run build").
# Root logs in over ssh with the generated key $TESTENV_VM_CACHE/key/id_ed25519 only.
# /etc/machine-id is empty: each VM gets its own at first boot.
# No mounts, no loop devices: the file system is written by mke2fs -d.
source "$(dirname "$(readlink -f "$0")")/lib.sh"
strict
as_root
PRINT=0 FORCE=0
for a in "$@"; do
  case $a in
    --print) PRINT=1 ;;
    --force) FORCE=1 ;;
    *) die "usage: image.sh [--print] [--force]" ;;
  esac
done
SUITE=$(host_suite)
ROOT_MB=${TESTENV_VM_ROOT_MB:-4096}
PKGS=systemd,systemd-sysv,dbus,udev,kmod,linux-image-amd64,initramfs-tools,openssh-server,iproute2,etcd-server,e2fsprogs,gdisk,procps,iputils-ping,ca-certificates,less
NODE_BIN=$(readlink -f "$(command -v node)") || die "no node on PATH (the guest gets the host's node)"
# Kernel modules the initramfs loads (MODULES=list keeps it small; everything else comes from
# the root fs through udev: iso9660 for config-drive, qemu_fw_cfg for fw_cfg, ...).
INITRD_MODULES="virtio_pci virtio_blk virtio_net virtio_rng ext4 crc32c_generic 9pnet_virtio 9p"

mkdir -p "$VM_CACHE/key" "$VM_CACHE/debs" "$VM_CACHE/images"
exec 7>"$VM_CACHE/.build.lock"
flock -w 900 7 || die "timed out waiting for another image build ($VM_CACHE/.build.lock)"
[ -s "$VM_KEY" ] || ssh-keygen -q -t ed25519 -N '' -C flotilla-testenv-vm -f "$VM_KEY"

units=()
for f in "$VM_PROJECT"/systemd/*.service "$VM_PROJECT"/systemd/*.socket "$VM_PROJECT"/systemd/*.path "$VM_PROJECT"/systemd/*.target; do
  [ -f "$f" ] && units+=("$f")
done
HASH=$( {
  echo "$SUITE|$PKGS|$ROOT_MB|$INITRD_MODULES"
  cat "$0"
  sha256sum "$NODE_BIN" | cut -d' ' -f1
  cat "$VM_KEY.pub"
  for f in "${units[@]}"; do echo "${f##*/}"; cat "$f"; done
} | sha256sum | cut -c1-16)
OUT="$VM_CACHE/images/$HASH"

if [ "$FORCE" = 0 ] && [ -e "$OUT/ready" ]; then
  [ "$PRINT" = 1 ] || info "VM image cached: $OUT"
  echo "$OUT"; exit 0
fi
[ "$PRINT" = 0 ] || die "no image for the current inputs (hash $HASH): run image.sh"

need_pkgs debootstrap e2fsprogs
t0=$(now_ms)
T="$VM_CACHE/tree.part"
rm -rf "$T" "$OUT.part"; mkdir -p "$T/etc/dpkg/dpkg.cfg.d" "$OUT.part"
echo force-unsafe-io > "$T/etc/dpkg/dpkg.cfg.d/00flotilla-unsafe-io"
# small initramfs: set before debootstrap installs the kernel, so it is built once, small
mkdir -p "$T/etc/initramfs-tools/conf.d"
echo 'MODULES=list' > "$T/etc/initramfs-tools/conf.d/flotilla-vm.conf"
printf '%s\n' $INITRD_MODULES > "$T/etc/initramfs-tools/modules"
mirror=$(host_mirror "$SUITE")
info "VM image $HASH: debootstrap $SUITE from $mirror (log $T_LOG/vm-debootstrap.log)"
mkdir -p "$T_LOG"
if ! debootstrap --variant=minbase --cache-dir="$VM_CACHE/debs" --include="$PKGS" \
     "$SUITE" "$T" "$mirror" > "$T_LOG/vm-debootstrap.log" 2>&1; then
  tail -20 "$T_LOG/vm-debootstrap.log" >&2
  die "debootstrap failed (log $T_LOG/vm-debootstrap.log)"
fi
info "debootstrap done in $(since "$t0")"

# ---- customise (no daemons run: nothing here starts a service) --------------------------------
rm -f "$T/etc/dpkg/dpkg.cfg.d/00flotilla-unsafe-io"
: > "$T/etc/machine-id"
rm -f "$T/var/lib/dbus/machine-id"; ln -s /etc/machine-id "$T/var/lib/dbus/machine-id"
rm -f "$T/etc/hostname"   # boot.sh names the VM (systemd.hostname=); cloud-config may rename it
printf '127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n' > "$T/etc/hosts"
printf '# flotilla test VMs: no DNS\n' > "$T/etc/resolv.conf"
printf 'PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"\n' > "$T/etc/environment"
cat > "$T/etc/fstab" <<'FSTAB'
/dev/vda  /         ext4  rw,discard,errors=remount-ro  0 1
# the project checkout, shared read-only by boot.sh (virtio-9p, tag "project")
project   /project  9p    trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144,nofail  0 0
FSTAB
mkdir -p "$T/project" "$T/usr/lib"
ln -sfn /project "$T/usr/lib/flotilla"
install -m 755 "$NODE_BIN" "$T/usr/bin/node"
for b in flotilla fleetctl coreos-cloudinit; do ln -sfn /usr/lib/flotilla/bin/flotilla "$T/usr/local/bin/$b"; done

# network: DHCP on the user-mode NIC; --lan NICs get static addresses from the kernel command
# line (flotilla.lan=MAC/ADDR/PREFIX, written to /run/systemd/network before networkd starts)
cat > "$T/etc/systemd/network/80-dhcp.network" <<'NET'
[Match]
Name=en*

[Network]
DHCP=ipv4
LinkLocalAddressing=no
IPv6AcceptRA=no
NET
cat > "$T/usr/local/sbin/flotilla-vm-lan" <<'SH'
#!/bin/sh
# Static addresses for the VM's LAN NICs, from flotilla.lan=MAC/ADDR/PREFIX on the kernel command line.
set -eu
mkdir -p /run/systemd/network
i=0
for w in $(cat /proc/cmdline); do
  case $w in
    flotilla.lan=*)
      v=${w#flotilla.lan=}; mac=${v%%/*}; addr=${v#*/}; i=$((i + 1))
      printf '[Match]\nMACAddress=%s\n\n[Network]\nAddress=%s\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n' \
        "$mac" "$addr" > "/run/systemd/network/10-flotilla-lan$i.network"
      ;;
  esac
done
SH
chmod 755 "$T/usr/local/sbin/flotilla-vm-lan"
cat > "$T/etc/systemd/system/flotilla-vm-lan.service" <<'UNIT'
[Unit]
Description=flotilla test VM: static addresses of the LAN NICs
DefaultDependencies=no
Before=systemd-networkd.service
After=local-fs.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/flotilla-vm-lan

[Install]
WantedBy=systemd-networkd.service
UNIT

# ssh: root with the generated key only; one ed25519 host key made at first boot (RSA key
# generation under TCG costs seconds), so VMs never share host keys
rm -f "$T"/etc/ssh/ssh_host_*
mkdir -p "$T/root/.ssh"; chmod 700 "$T/root/.ssh"
install -m 600 "$VM_KEY.pub" "$T/root/.ssh/authorized_keys"
cat > "$T/etc/ssh/sshd_config.d/flotilla-vm.conf" <<'SSHD'
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
UseDNS no
SSHD
cat > "$T/etc/systemd/system/flotilla-vm-hostkey.service" <<'UNIT'
[Unit]
Description=flotilla test VM: ssh host key
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key

[Install]
WantedBy=ssh.service
UNIT

# the project's units (systemd/), as the install path puts them; none is enabled here except
# the first-boot units (flotilla-ignition, flotilla-cloudinit), when the project has them
for f in "${units[@]}"; do install -m 644 "$f" "$T/etc/systemd/system/${f##*/}"; done
mkdir -p "$T/etc/flotilla"

chroot "$T" systemctl enable systemd-networkd.service ssh.service flotilla-vm-lan.service \
  flotilla-vm-hostkey.service >/dev/null 2>&1
for u in flotilla-ignition.service flotilla-cloudinit.service; do
  if [ -f "$T/etc/systemd/system/$u" ]; then
    chroot "$T" systemctl enable "$u" >/dev/null 2>&1 || die "cannot enable $u"
  fi
done
# masked (not disabled): an empty machine-id makes systemd apply presets at first boot.
# etcd.service is Debian's default member on 127.0.0.1:2379; the project runs etcd-member.service.
for u in etcd.service systemd-networkd-wait-online.service apt-daily.timer apt-daily-upgrade.timer \
         dpkg-db-backup.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer getty@tty1.service; do
  ln -sfn /dev/null "$T/etc/systemd/system/$u"
done
rm -rf "$T"/var/cache/apt/archives/*.deb "$T"/var/lib/apt/lists/*_* "$T"/var/log/*.log "$T"/tmp/*
# drop driver trees no VM uses (they only cost image build time)
for k in "$T"/lib/modules/*/kernel; do
  rm -rf "$k"/drivers/{gpu,media,net/wireless,infiniband,staging,bluetooth,isdn,iio,comedi,mtd} \
    "$k"/sound "$k"/net/{wireless,mac80211,bluetooth}
done
for v in "$T"/lib/modules/*; do chroot "$T" depmod -a "${v##*/}"; done

kver=$(ls "$T/boot" | sed -n 's/^vmlinuz-//p' | sort -V | tail -1)
[ -n "$kver" ] || die "no kernel in the image (linux-image-amd64 not installed?)"
cp "$T/boot/vmlinuz-$kver" "$OUT.part/vmlinuz"
cp "$T/boot/initrd.img-$kver" "$OUT.part/initrd.img"
echo "root=/dev/vda rw console=ttyS0,115200 panic=10 quiet" > "$OUT.part/cmdline"
echo "flotilla test VM $HASH, $SUITE, kernel $kver, node $("$NODE_BIN" --version)" > "$T/etc/flotilla-vm-release"
cp "$T/etc/flotilla-vm-release" "$OUT.part/release"
mke2fs -q -F -t ext4 -L root -d "$T" -E nodiscard "$OUT.part/root.raw" "${ROOT_MB}M" \
  || die "mke2fs -d failed"
rm -rf "$T"
touch "$OUT.part/ready"
rm -rf "$OUT"; mv "$OUT.part" "$OUT"
# keep only the newest few images
ls -1dt "$VM_CACHE"/images/*/ 2>/dev/null | tail -n +4 | xargs -r rm -rf
info "VM image $OUT built in $(since "$t0") ($(du -sh "$OUT" | cut -f1) on disk)"
echo "$OUT"
