/**
 * Test hygiene (cockpit's `_check_settled`): every test must end with no child processes of the
 * test worker left running. A test that spawns `journalctl`, `etcd` or a CLI and forgets to reap it
 * fails here, naming the leftover commands.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { afterEach, expect } from 'vitest';

function children(pid: number): number[] {
  const out: number[] = [];
  let tasks: string[] = [];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const t of tasks) {
    try {
      const list = readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim();
      if (list) out.push(...list.split(/\s+/).map(Number));
    } catch {
      /* the task ended */
    }
  }
  return out;
}

function describePid(pid: number): string {
  try {
    return `${pid} ${readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim()}`;
  } catch {
    return String(pid);
  }
}

function isZombieOrGone(pid: number): boolean {
  try {
    return /^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return true;
  }
}

afterEach(async () => {
  // Give exiting children a moment to be reaped.
  for (let i = 0; i < 20; i++) {
    if (children(process.pid).every(isZombieOrGone)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  const left = children(process.pid).filter((p) => !isZombieOrGone(p));
  expect(left.map(describePid), 'child processes left running by this test').toEqual([]);
});
