#!/usr/bin/env bash
# exec.sh mK [CMD ARGS...]: run CMD inside machine mK (all of its namespaces, clean
# environment, root). stdin/stdout/stderr and the exit code pass through; no CMD = login shell.
# Same as "machines.sh exec mK CMD...". Examples:
#   exec.sh m1 systemctl is-system-running
#   exec.sh m2 journalctl -u flotilla -o json --no-pager
exec "$(dirname "$(readlink -f "$0")")/machines.sh" exec "$@"
