#!/usr/bin/env bash
# libvirtd + virtlogd for the Vagrant route, started by hand (test hosts have no systemd as PID 1).
#
#   libvirt.sh start | stop | status
#
# start: starts virtlogd/libvirtd unless they already run (then records that we started them in
#        $TESTENV_RUN/vagrant/), defines this instance's storage pool ($PREFIX"vagrant", under
#        $TESTENV_STATE/vagrant/pool) and writes the TCG emulator wrapper (translation cache 128 MiB
#        instead of QEMU's 1 GiB default; libvirt cannot set it).
# stop:  destroys and undefines only this instance's objects (domains, networks, pool, volumes named
#        with the prefix), then stops the daemons if this script started them. The stock "default"
#        NAT network is never started.
source "$(dirname "$(readlink -f "$0")")/lib.sh"
strict
as_root

start() {
  need_pkgs "${VG_HOST_PKGS[@]}"
  mkdir -p "$VG_RUN" "$VG_STATE/pool" /run/libvirt /var/log/libvirt/qemu "$VM_CACHE/bin"
  # /dev/kvm may be root:root 0600 without udev; libvirt then re-probes QEMU on every capability
  # lookup (~50 s per define). root:kvm 0660 is Debian's normal mode; stop restores the original.
  if [ -c /dev/kvm ] && [ ! -f "$VG_RUN/dev-kvm.orig" ] && [ "$(stat -c %a /dev/kvm)" = 600 ]; then
    stat -c "%U:%G %a" /dev/kvm > "$VG_RUN/dev-kvm.orig"
    chgrp kvm /dev/kvm && chmod 660 /dev/kvm
  fi
  cat > "$VM_CACHE/bin/qemu-system-x86_64-tcg" <<'SH'
#!/bin/bash
# written by flotilla test/env/vagrant/libvirt.sh: QEMU with a 128 MiB TCG translation cache
args=() prev=
for a in "$@"; do
  if [ "$prev" = -accel ] && [ "$a" = tcg ]; then a="tcg,tb-size=128"; fi
  args+=("$a"); prev="$a"
done
exec /usr/bin/qemu-system-x86_64 "${args[@]}"
SH
  chmod 755 "$VM_CACHE/bin/qemu-system-x86_64-tcg" "$VM_CACHE/bin" "$VM_CACHE"
  if ! alive_file /run/virtlogd.pid virtlogd; then virtlogd -d; touch "$VG_RUN/started-virtlogd"; sleep 0.5; fi
  if ! alive_file /run/libvirtd.pid libvirtd; then libvirtd -d; touch "$VG_RUN/started-libvirtd"; fi
  local i
  for i in $(seq 60); do virsh_ version >/dev/null 2>&1 && break; sleep 0.25; done
  virsh_ version >/dev/null 2>&1 || die "libvirtd did not come up (see /var/log/libvirt/)"
  if ! virsh_ pool-info "$VG_POOL" >/dev/null 2>&1; then
    virsh_ pool-define-as "$VG_POOL" dir --target "$VG_STATE/pool" >/dev/null
  fi
  case "$(virsh_ pool-info "$VG_POOL")" in *running*) ;; *) virsh_ pool-start "$VG_POOL" >/dev/null ;; esac
  info "libvirtd pid $(cat /run/libvirtd.pid), pool $VG_POOL ($VG_STATE/pool)"
}

# objects of this instance: names starting with the prefix
mine() { grep -E "^${VG_PREFIX}" || true; }

stop() {
  if alive_file /run/libvirtd.pid libvirtd; then
    local d n v
    for d in $(virsh_ list --all --name 2>/dev/null | mine); do
      virsh_ destroy "$d" >/dev/null 2>&1 || true
      virsh_ undefine "$d" --nvram >/dev/null 2>&1 || virsh_ undefine "$d" >/dev/null 2>&1 || true
    done
    for n in $(virsh_ net-list --all --name 2>/dev/null | mine); do
      virsh_ net-destroy "$n" >/dev/null 2>&1 || true; virsh_ net-undefine "$n" >/dev/null 2>&1 || true
    done
    if virsh_ pool-info "$VG_POOL" >/dev/null 2>&1; then
      for v in $(virsh_ vol-list "$VG_POOL" 2>/dev/null | awk 'NR>2 && $1 {print $1}'); do
        virsh_ vol-delete --pool "$VG_POOL" "$v" >/dev/null 2>&1 || true
      done
      virsh_ pool-destroy "$VG_POOL" >/dev/null 2>&1 || true; virsh_ pool-undefine "$VG_POOL" >/dev/null 2>&1 || true
    fi
  fi
  local f p
  for f in libvirtd virtlogd; do
    [ -f "$VG_RUN/started-$f" ] || continue
    if alive_file "/run/$f.pid" "$f"; then
      p=$(cat "/run/$f.pid"); kill "$p"
      for _ in $(seq 20); do kill -0 "$p" 2>/dev/null || break; sleep 0.25; done
      kill -0 "$p" 2>/dev/null && kill -9 "$p"
      info "stopped $f (pid $p)"
    fi
    rm -f "$VG_RUN/started-$f"
  done
  if [ -f "$VG_RUN/dev-kvm.orig" ]; then
    read -r og mode < "$VG_RUN/dev-kvm.orig"
    chown "$og" /dev/kvm && chmod "$mode" /dev/kvm && rm -f "$VG_RUN/dev-kvm.orig"
  fi
  return 0
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) for f in libvirtd virtlogd; do
            if alive_file "/run/$f.pid" "$f"; then echo "$f: running (pid $(cat "/run/$f.pid"))"; else echo "$f: stopped"; fi
          done ;;
  *) die "usage: libvirt.sh start|stop|status" ;;
esac
