#!/usr/bin/env bash
# Tear the whole test environment down: etcd (loopback data and the members in the machines),
# every machine (disks, netns, bridge, firewall rules), the Docker engine started by docker.sh
# (containers removed). Kept: the caches (/var/cache/flotilla-testenv, the unpacked rootfs,
# installed packages, Docker images), so the next up.sh takes seconds.
source "$(dirname "$(readlink -f "$0")")/lib.sh"
as_root
t0=$(now_ms)
rc=0
"$TESTENV_DIR/vm/stop.sh" --all --kill --purge || rc=1   # VMs of test/env/vm (image cache kept)
"$TESTENV_DIR/etcd.sh" down --loopback || rc=1   # the members in the machines go with their disks
"$TESTENV_DIR/machines.sh" down || rc=1
"$TESTENV_DIR/docker.sh" down || rc=1
[ $rc = 0 ] || die "some part did not go down cleanly (see above)"
info "test environment down in $(since "$t0")"
