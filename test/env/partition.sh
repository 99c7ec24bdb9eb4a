#!/usr/bin/env bash
# Network partitions between machines (and the host), for failure tests.
#
#   partition.sh mK on              drop all of mK's traffic (host and every machine)
#   partition.sh mK on PEER...      drop only the traffic between mK and these peers (mJ or host)
#                                   (adds to what is already cut)
#   partition.sh mK off             heal what "partition.sh mK ..." cut
#   partition.sh mK status          what mK is cut from, and the DROP rules in its netns
#   partition.sh off                heal every partition
#
# Silent drop: packets are discarded by the RECEIVER (iptables INPUT in the machine's netns,
# or the host's INPUT for the bridge), so senders see timeouts, never errors. mK's own
# loopback keeps working, and so do unix sockets: its D-Bus (TESTENV_MK_BUS) and exec.sh still
# reach it. Partitions persist across "machines.sh down/up mK"; "machines.sh down" clears them.
source "$(dirname "$(readlink -f "$0")")/lib.sh"
strict
as_root
usage() { die "usage: partition.sh mK on [PEER...] | mK off | mK status | off"; }
[ $# -ge 1 ] || usage
mkdir -p "$T_RUN/partitions"
if [ "$1" = off ] && [ $# = 1 ]; then
  rm -f "$T_RUN"/partitions/m*
  apply_partitions
  info "all partitions healed"
  exit 0
fi
[ $# -ge 2 ] || usage
m=$1 action=$2; shift 2
valid_machine "$m" || die "bad machine name '$m'"
if [ ! -d "$(m_disk "$m")" ] || ! ns_ok "$(m_ns "$m")"; then die "machine $m does not exist (machines.sh up $m)"; fi
f="$T_RUN/partitions/$m"
case $action in
  on)
    if [ $# = 0 ]; then
      echo all > "$f"
      info "$m: cut off from everything"
    else
      for p in "$@"; do
        [ "$p" = host ] || valid_machine "$p" || die "bad peer '$p' (mJ or host)"
        [ "$p" != "$m" ] || die "cannot partition $m from itself"
      done
      { cat "$f" 2>/dev/null || true; printf '%s\n' "$@"; } | sort -u > "$f.new"
      mv "$f.new" "$f"
      info "$m: cut off from $(grep -vx all "$f" | xargs)"
    fi
    apply_partitions ;;
  off)
    rm -f "$f"
    apply_partitions
    info "$m: healed" ;;
  status)
    if [ -s "$f" ]; then echo "$m cut off from: $(xargs < "$f")"; else echo "$m: not partitioned"; fi
    ip netns exec "$(m_ns "$m")" iptables -w -S $PART_CHAIN 2>/dev/null | grep DROP || true ;;
  *) usage ;;
esac
