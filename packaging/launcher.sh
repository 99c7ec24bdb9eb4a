#!/bin/sh
# flotilla's launcher (installed as /usr/lib/flotilla/bin/flotilla; /usr/bin/flotilla, fleetctl,
# coreos-cloudinit, update_engine_client and locksmithctl are symlinks to it). It runs the CLI on
# the Node runtime bundled next to it, never on a node from PATH, and `exec`s it so the agent keeps
# the PID systemd started (Type=notify, the watchdog and LISTEN_PID need that). The name it was
# called by picks the CLI's personality: only the five known names are accepted, anything else
# runs as `flotilla`. Relocatable: it finds its tree from its own path (tarball, --prefix).
set -e
self=$(readlink -f -- "$0")
lib=${self%/bin/*}
case ${0##*/} in
  fleetctl) name=fleetctl ;;
  coreos-cloudinit) name=coreos-cloudinit ;;
  update_engine_client) name=update_engine_client ;;
  locksmithctl) name=locksmithctl ;;
  *) name=flotilla ;;
esac
exec "$lib/node/bin/node" "$lib/libexec/$name" "$@"
