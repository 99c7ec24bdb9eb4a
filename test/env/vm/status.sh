#!/usr/bin/env bash
# Show the test VMs (no root needed):   status.sh [--json]
# One line per VM: NAME running|stopped ssh=127.0.0.1:PORT pid=PID image=HASH.
# --json: {"qemu": "<path or empty>", "accel": "tcg|kvm", "image": "<cached image dir or empty>",
#          "vms": [{"name", "running", "sshPort", "pid"}]}
source "$(dirname "$(readlink -f "$0")")/lib.sh"
set -uo pipefail
json=0; [ "${1:-}" = --json ] && json=1
qemu=$(command -v qemu-system-x86_64 || true)
accel=$(vm_accel 2>/dev/null || echo tcg)
image=""
if [ "$(id -u)" = 0 ]; then image=$("$VM_DIR/image.sh" --print 2>/dev/null || true); fi
rows=()
for d in "$VM_STATE"/*/; do
  [ -d "$d" ] || continue
  n=$(basename "$d"); valid_vm "$n" || continue
  run=false pid=""; if vm_alive "$n"; then run=true; pid=$(cat "$d/pid"); fi
  port=$(cat "$d/ssh_port" 2>/dev/null || true)
  if [ $json = 1 ]; then
    rows+=("{\"name\":\"$n\",\"running\":$run,\"sshPort\":${port:-null},\"pid\":${pid:-null}}")
  else
    img=$(cat "$d/image" 2>/dev/null || true)
    printf '%s %s ssh=127.0.0.1:%s pid=%s image=%s\n' "$n" "$([ $run = true ] && echo running || echo stopped)" "${port:--}" "${pid:--}" "${img##*/}"
  fi
done
if [ $json = 1 ]; then
  printf '{"qemu":"%s","accel":"%s","image":"%s","vms":[%s]}\n' "$qemu" "$accel" "$image" "$(IFS=,; echo "${rows[*]}")"
elif [ ${#rows[@]} = 0 ] && [ -z "$(ls "$VM_STATE" 2>/dev/null)" ]; then
  echo "no VMs (qemu: ${qemu:-not installed}, accel: $accel)"
fi
