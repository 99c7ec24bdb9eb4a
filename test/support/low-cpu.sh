#!/usr/bin/env bash
# low-cpu.sh CMD...: run CMD at a low CPU priority, so that it takes mostly the CPU the rest of the
# machine leaves idle. test/run.sh runs the other Node majors' unit suites this way beside the
# real-daemon suites, whose timings (failover, duplicate windows, VM boots under TCG) must not pay
# much for them. Low, not idle: a SCHED_IDLE job starves outright while a TCG VM keeps both cores
# busy, and its tests then hit their timeouts.
#   - its own session (setsid), so the scheduler's autogroup is its own, niced to 10 where
#     /proc/self/autogroup exists;
#   - a cpu cgroup of its own with about a tenth of the default weight (v1 cpu.shares=110, v2
#     cpu.weight=10), when we are root and the cpu controller is there;
#   - nice 10 for every process it starts.
# Each of these is best effort: the command runs the same either way, only its priority differs.
set -uo pipefail
[ $# -gt 0 ] || { echo "usage: low-cpu.sh CMD..." >&2; exit 2; }
if [ "${LOW_CPU_INNER:-}" != 1 ]; then
  exec env LOW_CPU_INNER=1 setsid --wait bash "$0" "$@"
fi
[ -w /proc/self/autogroup ] && echo 10 >/proc/self/autogroup 2>/dev/null
cg=""
if [ -d /sys/fs/cgroup/cpu ] && [ -f /sys/fs/cgroup/cpu/cpu.shares ]; then # v1 (or hybrid)
  cg=/sys/fs/cgroup/cpu/flotilla-low-cpu
  mkdir -p "$cg" 2>/dev/null || cg=""
  [ -n "$cg" ] && [ -f "$cg/cpu.idle" ] && echo 0 >"$cg/cpu.idle" 2>/dev/null # an idle group takes no shares
  [ -n "$cg" ] && { echo 110 >"$cg/cpu.shares"; } 2>/dev/null || cg=""
elif grep -qw cpu /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then # v2
  cg=/sys/fs/cgroup/flotilla-low-cpu
  { grep -qw cpu /sys/fs/cgroup/cgroup.subtree_control || echo +cpu >/sys/fs/cgroup/cgroup.subtree_control; } 2>/dev/null
  mkdir -p "$cg" 2>/dev/null && echo 10 >"$cg/cpu.weight" 2>/dev/null || cg=""
fi
[ -n "$cg" ] && { echo $$ >"$cg/cgroup.procs"; } 2>/dev/null
unset LOW_CPU_INNER
exec nice -n 10 "$@"
