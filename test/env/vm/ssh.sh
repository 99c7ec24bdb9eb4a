#!/usr/bin/env bash
# ssh as root into a test VM started by boot.sh:   ssh.sh NAME [COMMAND...]
# (the key is $TESTENV_VM_CACHE/key/id_ed25519; the port is in $TESTENV_STATE/vm/NAME/ssh_port)
source "$(dirname "$(readlink -f "$0")")/lib.sh"
NAME=${1:-}; valid_vm "$NAME" || die "usage: ssh.sh NAME [COMMAND...]"; shift
vm_alive "$NAME" || die "VM $NAME is not running (boot.sh $NAME)"
if [ $# -eq 0 ]; then vm_ssh "$NAME" -t; else vm_ssh "$NAME" -- "$@"; fi
