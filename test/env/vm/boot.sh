#!/usr/bin/env bash
# Boot a test VM from the image of image.sh and wait until root can ssh in.
#
#   boot.sh NAME [options]
#     --config-drive DIR|FILE.iso  attach a config drive: ISO9660 labelled config-2 made from DIR
#                                  (which holds openstack/latest/user_data, meta_data.json), or an ISO
#     --fw-cfg FILE        hand FILE to the guest as fw_cfg opt/com.coreos/config (Ignition, qemu)
#     --mem MB             guest RAM (default 1024)
#     --cpus N             vCPUs (default 2)
#     --lan NET[:ADDR/PREFIX]  extra NIC on bridge flvm-NET (created here: no uplink, no host
#                          address, only VMs on it); with ADDR the guest gives it that address
#     --fwd HOSTPORT:GUESTPORT extra TCP forward on 127.0.0.1 (repeatable)
#     --append ARGS        more kernel command line
#     --no-project         do not share the checkout at /project
#     --fresh              throw away the VM's disk (default: kept across boot.sh/stop.sh)
#     --timeout S          how long to wait for ssh (default 240)
#     --no-wait            do not wait for ssh
# User networking is restrict=on: the guest reaches nothing outside it (no host, no internet);
# the forwards on 127.0.0.1 still work.
# Prints "NAME ssh 127.0.0.1:PORT ready after Ns" at the end. State in $TESTENV_STATE/vm/NAME:
# disk.qcow2 (overlay on the cached image), pid, ssh_port, serial.log (the console), qemu.err,
# started_ms (power-on, ms since the epoch), ssh_ms (first successful ssh).
source "$(dirname "$(readlink -f "$0")")/lib.sh"
strict
as_root
usage() { die "usage: boot.sh NAME [--config-drive DIR] [--fw-cfg FILE] [--mem MB] [--cpus N] [--lan NET[:ADDR/PREFIX]] [--fwd H:G] [--append ARGS] [--no-project] [--fresh] [--timeout S] [--no-wait]"; }
NAME=${1:-}; valid_vm "$NAME" || usage; shift
MEM=1024 CPUS=2 FRESH=0 WAIT=1 TIMEOUT=240 SHARE=1 CDRIVE="" FWCFG="" APPEND="" LANS=() FWDS=()
while [ $# -gt 0 ]; do
  case $1 in
    --config-drive) CDRIVE=${2:?}; shift ;;
    --fw-cfg) FWCFG=${2:?}; shift ;;
    --mem) MEM=${2:?}; shift ;;
    --cpus) CPUS=${2:?}; shift ;;
    --lan) LANS+=("${2:?}"); shift ;;
    --fwd) FWDS+=("${2:?}"); shift ;;
    --append) APPEND=${2:?}; shift ;;
    --timeout) TIMEOUT=${2:?}; shift ;;
    --no-project) SHARE=0 ;;
    --fresh) FRESH=1 ;;
    --no-wait) WAIT=0 ;;
    *) usage ;;
  esac
  shift
done
[[ $MEM =~ ^[0-9]+$ ]] && [ "$MEM" -ge 256 ] || die "--mem must be a number of MB >= 256 (got $MEM)"
[[ $CPUS =~ ^[1-9][0-9]?$ ]] || die "--cpus must be 1..99 (got $CPUS)"
[[ $TIMEOUT =~ ^[0-9]+$ ]] || die "--timeout must be seconds (got $TIMEOUT)"
for f in "${FWDS[@]}"; do [[ $f =~ ^[0-9]+:[0-9]+$ ]] || die "--fwd must be HOSTPORT:GUESTPORT (got $f)"; done
for l in "${LANS[@]}"; do
  [[ $l =~ ^[a-z0-9]{1,10}(:[0-9]{1,3}(\.[0-9]{1,3}){3}/[0-9]{1,2})?$ ]] || die "--lan must be NET[:ADDR/PREFIX], NET 1-10 of [a-z0-9] (got $l)"
done
for c in qemu-system-x86_64 qemu-img ssh; do command -v "$c" >/dev/null || die "$c is missing: apt-get install ${VM_HOST_PKGS[*]} (or test/env/up.sh)"; done

D=$(vm_dir "$NAME")
mkdir -p "$D"
exec 9>"$D/.lock"; flock -w 60 9 || die "VM $NAME is being started or stopped by someone else"
vm_alive "$NAME" && die "VM $NAME is already running (pid $(cat "$D/pid")); stop.sh $NAME first"
IMG=$("$VM_DIR/image.sh" --print 2>/dev/null) || IMG=$("$VM_DIR/image.sh")
if [ "$FRESH" = 1 ] || [ ! -f "$D/disk.qcow2" ] || [ "$(cat "$D/image" 2>/dev/null)" != "$IMG" ]; then
  rm -f "$D/disk.qcow2"
  qemu-img create -q -f qcow2 -b "$IMG/root.raw" -F raw "$D/disk.qcow2"
  echo "$IMG" > "$D/image"
fi

ACCEL=$(vm_accel)
if [ "$ACCEL" = kvm ]; then
  ACCEL_ARGS=(-accel kvm -cpu host)
else
  # tb-size: QEMU's default 1 GiB translation cache doubles the host memory of each VM
  ACCEL_ARGS=(-accel "tcg,thread=multi,tb-size=${TESTENV_VM_TB_MB:-128}" -cpu max)
fi
PORT=$(free_port)
fwd="hostfwd=tcp:127.0.0.1:$PORT-:22"
for f in "${FWDS[@]}"; do fwd+=",hostfwd=tcp:127.0.0.1:${f%%:*}-:${f##*:}"; done
CMDLINE="$(cat "$IMG/cmdline") systemd.hostname=$NAME"
ARGS=(-name "$NAME" -machine q35 "${ACCEL_ARGS[@]}" -smp "$CPUS" -m "$MEM"
      -nodefaults -no-user-config -display none -vga none
      -serial "file:$D/serial.log"
      -kernel "$IMG/vmlinuz" -initrd "$IMG/initrd.img"
      -drive "file=$D/disk.qcow2,if=none,id=root,format=qcow2,discard=unmap,cache=unsafe"
      -device virtio-blk-pci,drive=root
      -netdev "user,id=user0,net=10.0.2.0/24,restrict=on,$fwd" -device virtio-net-pci,netdev=user0
      -device virtio-rng-pci
      -pidfile "$D/pid" -daemonize)
if [ "$SHARE" = 1 ]; then
  [ -f "$VM_PROJECT/dist/cli/main.js" ] || info "warning: $VM_PROJECT/dist is not built (npm run build): flotilla will not run in the VM"
  ARGS+=(-virtfs "local,path=$VM_PROJECT,mount_tag=project,security_model=none,readonly=on,id=project")
fi

# config drive: ISO9660 labelled config-2 (what OpenStack and coreos-cloudinit -from-configdrive read)
rm -f "$D/config-2.iso" "$D/fw_cfg"
if [ -n "$CDRIVE" ]; then
  if [ -d "$CDRIVE" ]; then
    [ -f "$CDRIVE/openstack/latest/user_data" ] || [ -f "$CDRIVE/openstack/latest/meta_data.json" ] \
      || die "--config-drive $CDRIVE has neither openstack/latest/user_data nor openstack/latest/meta_data.json"
    command -v xorriso >/dev/null || die "xorriso is missing (apt-get install xorriso)"
    xorriso -as mkisofs -quiet -V config-2 -J -R -o "$D/config-2.iso" "$CDRIVE" 2>"$D/xorriso.err" \
      || { cat "$D/xorriso.err" >&2; die "xorriso could not build the config drive from $CDRIVE"; }
  elif [ -f "$CDRIVE" ]; then
    cp "$CDRIVE" "$D/config-2.iso"
  else
    die "--config-drive $CDRIVE: no such directory or file"
  fi
  ARGS+=(-drive "file=$D/config-2.iso,if=virtio,format=raw,readonly=on,media=disk")
fi
if [ -n "$FWCFG" ]; then
  [ -f "$FWCFG" ] || die "--fw-cfg $FWCFG: no such file"
  cp "$FWCFG" "$D/fw_cfg"   # a path with a comma would break QEMU's option syntax
  ARGS+=(-fw_cfg "name=opt/com.coreos/config,file=$D/fw_cfg")
fi

# LANs: one tap per VM and LAN on bridge flvm-NET, which has no address and no uplink
: > "$D/taps"
i=0
for l in "${LANS[@]}"; do
  net=${l%%:*} addr=""; [ "$net" != "$l" ] && addr=${l#*:}
  br="flvm-$net" tap="flvt$(printf '%s' "$T_STATE/$NAME/$net" | md5sum | cut -c1-10)"
  mac="52:54:01:$(printf '%s' "$T_STATE/$NAME/$net" | md5sum | sed 's/^\(..\)\(..\)\(..\).*/\1:\2:\3/')"
  i=$((i + 1))
  if ! ip link show "$br" >/dev/null 2>&1; then
    ip link add "$br" type bridge
    echo 1 > "/proc/sys/net/ipv6/conf/$br/disable_ipv6" 2>/dev/null || true
    ip link set "$br" up
  fi
  # Docker's FORWARD policy DROP would also drop bridged frames (br_netfilter): allow this LAN
  iptables -w -C FORWARD -i "$br" -o "$br" -j ACCEPT 2>/dev/null || iptables -w -I FORWARD -i "$br" -o "$br" -j ACCEPT
  ip link del "$tap" 2>/dev/null || true
  ip tuntap add dev "$tap" mode tap
  ip link set "$tap" master "$br" up
  echo "$tap $br" >> "$D/taps"
  ARGS+=(-netdev "tap,id=lan$i,ifname=$tap,script=no,downscript=no" -device "virtio-net-pci,netdev=lan$i,mac=$mac")
  [ -n "$addr" ] && CMDLINE+=" flotilla.lan=$mac/$addr"
done
[ -n "$APPEND" ] && CMDLINE+=" $APPEND"
ARGS+=(-append "$CMDLINE")

rm -f "$D/serial.log" "$D/ssh_ms" "$D/pid"
echo "$PORT" > "$D/ssh_port"
t0=$(now_ms); echo "$t0" > "$D/started_ms"
qemu-system-x86_64 "${ARGS[@]}" 2> "$D/qemu.err" 9>&- || { cat "$D/qemu.err" >&2; die "QEMU did not start (see $D/qemu.err)"; }
info "VM $NAME powered on ($ACCEL, ${MEM} MB, $CPUS vCPU): pid $(cat "$D/pid"), ssh 127.0.0.1:$PORT, console $D/serial.log"
[ "$WAIT" = 1 ] || exit 0
while ! vm_ssh "$NAME" true 2>/dev/null; do
  vm_alive "$NAME" || { tail -20 "$D/serial.log" >&2; die "VM $NAME exited while booting (console: $D/serial.log)"; }
  if [ $(( $(now_ms) - t0 )) -gt $((TIMEOUT * 1000)) ]; then
    tail -20 "$D/serial.log" >&2; die "VM $NAME: no ssh after ${TIMEOUT}s (console: $D/serial.log)"
  fi
  sleep 0.5
done
now_ms > "$D/ssh_ms"
echo "$NAME ssh 127.0.0.1:$PORT ready after $(since "$t0")"
