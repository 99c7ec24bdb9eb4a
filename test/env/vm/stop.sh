#!/usr/bin/env bash
# Stop test VMs started by boot.sh.
#
#   stop.sh NAME... | --all   [--kill] [--purge]
#     default  clean poweroff (systemctl poweroff over ssh), QEMU killed after 30 s
#     --kill   power cut: SIGKILL QEMU at once
#     --purge  also delete the VM's state (disk overlay, console log)
# Removes the VM's taps, and a LAN bridge (flvm-*) once no tap is left on it.
source "$(dirname "$(readlink -f "$0")")/lib.sh"
strict
as_root
KILL=0 PURGE=0 names=()
for a in "$@"; do
  case $a in
    --kill) KILL=1 ;;
    --purge) PURGE=1 ;;
    --all) for d in "$VM_STATE"/*/; do [ -d "$d" ] && names+=("$(basename "$d")"); done ;;
    *) valid_vm "$a" || die "usage: stop.sh NAME...|--all [--kill] [--purge]"; names+=("$a") ;;
  esac
done
[ ${#names[@]} -gt 0 ] || { [[ " $* " == *" --all "* ]] && exit 0; die "usage: stop.sh NAME...|--all [--kill] [--purge]"; }

stop_one() {
  local n=$1 D pid i
  D=$(vm_dir "$n")
  [ -d "$D" ] || { info "VM $n: not known"; return 0; }
  exec 9>"$D/.lock"; flock -w 60 9 || die "VM $n is being started or stopped by someone else"
  if vm_alive "$n"; then
    pid=$(cat "$D/pid")
    if [ "$KILL" = 0 ]; then
      timeout 20 bash -c 'source "$1/lib.sh"; vm_ssh "$2" systemctl poweroff' _ "$VM_DIR" "$n" >/dev/null 2>&1 || true
      for i in $(seq 60); do alive "$pid" qemu-system-x86 || break; sleep 0.5; done
    fi
    if alive "$pid" qemu-system-x86; then
      kill -KILL "$pid" 2>/dev/null || true
      for i in $(seq 40); do alive "$pid" qemu-system-x86 || break; sleep 0.25; done
    fi
    info "VM $n stopped"
  fi
  local tap br
  while read -r tap br; do
    [ -n "$tap" ] || continue
    ip link del "$tap" 2>/dev/null || true
    if [ -d "/sys/class/net/$br" ] && [ -z "$(ls "/sys/class/net/$br/brif" 2>/dev/null)" ]; then
      ip link del "$br" 2>/dev/null || true
      iptables -w -D FORWARD -i "$br" -o "$br" -j ACCEPT 2>/dev/null || true
    fi
  done < <(cat "$D/taps" 2>/dev/null)
  : > "$D/taps"
  rm -f "$D/pid"
  exec 9>&-
  if [ "$PURGE" = 1 ]; then rm -rf "$D"; fi
}
for n in "${names[@]}"; do stop_one "$n"; done
