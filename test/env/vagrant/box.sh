#!/usr/bin/env bash
# Build the local Vagrant box (provider libvirt) from the QEMU route's Debian image and
# `vagrant box add` it (no box registry is reachable from test hosts).
#
#   box.sh [--no-add] [--force]
#
# Input: test/env/vm/image.sh's image (Debian minbase + systemd, etcd-server, openssh; built from
# Debian's packages). The box is that root file system with these changes, made with debugfs (no
# mounts, no loop devices): the QEMU route's /project links (/usr/lib/flotilla → /project and the
# /usr/local/bin wrappers) and its copies of the project's units are removed, so the package the
# Vagrantfile installs ($flotilla_package) is the only flotilla in the VM; root's authorized_keys
# gets Vagrant's insecure public key (a test box: Vagrant logs in as root, insert_key off).
# The box boots the kernel directly (no bootloader in the image): the kernel and initrd are kept
# next to the box in $TESTENV_VM_CACHE/vagrant-box/HASH/ and the box's own Vagrantfile points
# vagrant-libvirt's kernel/initrd/cmdline at them.
# Prints the box file. Cached by the image hash and this script (~0 s cached, ~15 s cold).
source "$(dirname "$(readlink -f "$0")")/lib.sh"
strict
as_root
ADD=1 FORCE=0
for a in "$@"; do
  case $a in --no-add) ADD=0 ;; --force) FORCE=1 ;; *) die "usage: box.sh [--no-add] [--force]" ;; esac
done
need_pkgs qemu-utils e2fsprogs
IMG=$(bash "$VM_DIR/image.sh")
[ -s "$IMG/root.raw" ] || die "image.sh gave no root.raw in $IMG"
INSECURE=$(ls /usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub 2>/dev/null | head -1 || true)
[ -n "$INSECURE" ] || die "Vagrant's insecure public key not found: apt-get install vagrant"
HASH=$( { basename "$IMG"; cat "$0"; cat "$INSECURE"; } | sha256sum | cut -c1-16)
OUT="$VG_BOXDIR/$HASH"
BOX="$OUT/flotilla-debian-test-libvirt.box"
if [ "$FORCE" = 1 ] || [ ! -s "$BOX" ]; then
  t0=$(now_ms)
  rm -rf "$OUT.part"; mkdir -p "$OUT.part/box"
  W="$OUT.part/root.raw"
  cp --sparse=always "$IMG/root.raw" "$W"
  cat "$VM_KEY.pub" "$INSECURE" > "$OUT.part/authorized_keys"
  {
    echo "rm /usr/lib/flotilla"
    for b in flotilla fleetctl coreos-cloudinit; do echo "rm /usr/local/bin/$b"; done
    for u in flotilla.service flotilla.socket flotilla-cloudinit.service flotilla-cloudinit-configdrive.service \
             flotilla-ignition.service; do
      echo "rm /etc/systemd/system/$u"
      for w in multi-user.target.wants sysinit.target.wants sockets.target.wants; do echo "rm /etc/systemd/system/$w/$u"; done
    done
    echo "rm /root/.ssh/authorized_keys"
    echo "write $OUT.part/authorized_keys /root/.ssh/authorized_keys"
    echo "sif /root/.ssh/authorized_keys mode 0100600"
    echo "sif /root/.ssh/authorized_keys uid 0"
    echo "sif /root/.ssh/authorized_keys gid 0"
  } > "$OUT.part/debugfs.cmds"
  # debugfs reports a missing path on stderr and goes on (a unit the project no longer ships)
  debugfs -w -f "$OUT.part/debugfs.cmds" "$W" > "$OUT.part/debugfs.log" 2>&1 || die "debugfs failed ($OUT.part/debugfs.log)"
  e2fsck -fy "$W" > "$OUT.part/e2fsck.log" 2>&1 || [ $? -le 1 ] || die "e2fsck after debugfs failed ($OUT.part/e2fsck.log)"
  debugfs -R "cat /root/.ssh/authorized_keys" "$W" 2>/dev/null | grep -qF "$(cut -d' ' -f2 "$INSECURE")" \
    || die "box: the insecure key did not land in /root/.ssh/authorized_keys"
  qemu-img convert -O qcow2 "$W" "$OUT.part/box/box.img"
  rm -f "$W"
  cp "$IMG/vmlinuz" "$IMG/initrd.img" "$OUT.part/"
  bytes=$(qemu-img info --output=json "$OUT.part/box/box.img" | sed -n 's/.*"virtual-size": *\([0-9]*\).*/\1/p' | head -1)
  gb=$(( (bytes + (1 << 30) - 1) >> 30 ))
  printf '{"provider":"libvirt","format":"qcow2","virtual_size":%d}\n' "$gb" > "$OUT.part/box/metadata.json"
  cat > "$OUT.part/box/Vagrantfile" <<VF
# Defaults inside the flotilla test box (built by test/env/vagrant/box.sh; a project Vagrantfile
# overrides them). Direct kernel boot: the image has no bootloader.
Vagrant.configure("2") do |config|
  config.vm.synced_folder ".", "/vagrant", disabled: true
  config.ssh.username = "root"
  config.ssh.insert_key = false
  config.vm.provider :libvirt do |lv|
    lv.disk_bus = "virtio"
    lv.nic_model_type = "virtio"
    lv.kernel = "$OUT/vmlinuz"
    lv.initrd = "$OUT/initrd.img"
    lv.cmd_line = "$(cat "$IMG/cmdline")"
  end
end
VF
  tar -C "$OUT.part/box" -cf "$OUT.part/${BOX##*/}" metadata.json Vagrantfile box.img
  rm -rf "$OUT.part/box"
  rm -rf "$OUT"; mv "$OUT.part" "$OUT"
  info "box $BOX ($(du -h "$BOX" | cut -f1)) built in $(since "$t0")"
fi
if [ "$ADD" = 1 ]; then
  need_pkgs vagrant
  cur=$(cat "$VG_STATE/box-added" 2>/dev/null || true)
  if [ "$cur" != "$HASH" ] || ! vagrant box list 2>/dev/null | grep -q "^${VG_BOX} "; then
    t0=$(now_ms)
    vagrant box add --force --name "$VG_BOX" --provider libvirt "$BOX" >/dev/null
    # vagrant-libvirt uploads a box into the pool once: drop a stale copy of an older box
    if virsh_ pool-info "$VG_POOL" >/dev/null 2>&1; then
      for v in $(virsh_ vol-list "$VG_POOL" 2>/dev/null | awk 'NR>2 && $1 {print $1}' | grep -F "${VG_BOX//\//-VAGRANTSLASH-}_vagrant_box_image" || true); do
        virsh_ vol-delete --pool "$VG_POOL" "$v" >/dev/null 2>&1 || true
      done
    fi
    mkdir -p "$VG_STATE"; echo "$HASH" > "$VG_STATE/box-added"
    info "vagrant box add $VG_BOX: $(since "$t0")"
  fi
fi
echo "$BOX"
