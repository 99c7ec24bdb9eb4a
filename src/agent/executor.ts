/**
 * The agent's executor: runs the planner's actions (src/agent/planner.ts) through the SystemdManager,
 * group by group in the order given; the units of one `start` or `stop` group have their jobs run side
 * by side (JOBS_IN_FLIGHT at a time). It decides nothing. A failing action is logged with its reason and the unit's
 * later actions in the same plan are skipped; other units go on (one bad unit must not block the
 * machine). Returns what it did, for logs and metrics.
 */
import type { SystemdManager } from '../systemd/manager.js';
import type { Logger } from '../lib/log.js';
import type { AgentAction } from './planner.js';

export interface ExecResult {
  action: AgentAction;
  ok: boolean;
  error?: string;
  ms: number;
}

export interface ExecutorHooks {
  /** Called after a unit's file was written (hash known) or removed (undefined). */
  installed(name: string, hash: string | undefined): void;
  /** Publish (or clear) the unit's state for this machine; `launched` when we started it. */
  report(name: string): Promise<void>;
  /** The agent started or stopped the unit (its job state). */
  jobState(name: string, state: 'loaded' | 'launched'): void;
  /** The contents to install for a unit (container units: the generated service). Throws: the unit fails. */
  prepareInstall?(name: string, hash: string, body: string): string;
  /** Start pulling a container unit's image in the background (the `pull` action). */
  pull?(name: string, image: string): void;
}

/** systemd start/stop jobs the executor has queued at once (one plan's group runs this wide). */
export const JOBS_IN_FLIGHT = 32;

async function inPool<T>(items: readonly T[], n: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
}

export async function execute(
  systemd: SystemdManager,
  actions: readonly AgentAction[],
  hooks: ExecutorHooks,
  log: Logger,
): Promise<ExecResult[]> {
  const failed = new Set<string>();
  const results: ExecResult[] = [];
  const reports: Promise<unknown>[] = [];
  const installs = actions.filter(
    (a): a is Extract<AgentAction, { type: 'install' }> => a.type === 'install',
  );
  let installedBatch = false;
  const unloads = actions.filter((a): a is Extract<AgentAction, { type: 'unload' }> => a.type === 'unload');
  let unloadedBatch = false;
  const runOne = async (a: AgentAction): Promise<void> => {
    const names = a.type === 'load' ? a.names : [a.name];
    if (a.type !== 'load' && failed.has(a.name)) return;
    const t0 = performance.now();
    try {
      switch (a.type) {
        case 'stop':
          await systemd.stop(a.name);
          hooks.jobState(a.name, 'loaded');
          break;
        case 'unload':
          // All unloads of the plan in one go: stops in parallel, one daemon-reload (destroying
          // 1,000 units used to cost a reload each).
          if (!unloadedBatch) {
            unloadedBatch = true;
            const todo = unloads.filter((u) => !failed.has(u.name)).map((u) => u.name);
            await systemd.uninstallMany(todo);
            for (const n of todo) hooks.installed(n, undefined);
          }
          break;
        case 'install':
          // All installs of the plan in one go: one write each, one daemon-reload.
          if (!installedBatch) {
            installedBatch = true;
            const todo: typeof installs = [];
            const contents = new Map<string, string>();
            for (const i of installs) {
              if (failed.has(i.name)) continue;
              try {
                contents.set(
                  i.name,
                  hooks.prepareInstall ? hooks.prepareInstall(i.name, i.hash, i.body) : i.body,
                );
                todo.push(i);
              } catch (err) {
                // One invalid unit (e.g. a bad [Container] section) must not keep the others out.
                failed.add(i.name);
                const msg = (err as Error).message;
                results.push({ action: i, ok: false, error: msg, ms: 0 });
                log.warn(
                  { action: 'install', units: [i.name], reason: i.reason, err: msg },
                  `install ${i.name} failed`,
                );
              }
            }
            await systemd.installMany(todo.map((i) => ({ name: i.name, contents: contents.get(i.name)! })));
            for (const i of todo) {
              hooks.installed(i.name, i.hash);
              hooks.jobState(i.name, 'loaded');
            }
          }
          break;
        case 'load':
          if (!installedBatch) await systemd.reload();
          break;
        case 'pull':
          if (!hooks.pull) throw new Error('container units are not supported by this agent (no Docker)');
          hooks.pull(a.name, a.image);
          break;
        case 'start':
          await systemd.start(a.name);
          hooks.jobState(a.name, 'launched');
          break;
        case 'report-state':
          // Not awaited one by one: the agent coalesces the reports of one plan into one batch.
          reports.push(
            hooks.report(a.name).then(
              () => results.push({ action: a, ok: true, ms: performance.now() - t0 }),
              (err: Error) => {
                results.push({ action: a, ok: false, error: err.message, ms: performance.now() - t0 });
                log.warn({ action: a.type, units: names, err: err.message }, `report-state ${a.name} failed`);
              },
            ),
          );
          return;
      }
      results.push({ action: a, ok: true, ms: performance.now() - t0 });
      log.info({ action: a.type, units: names, reason: a.reason }, `${a.type} ${names.join(', ')}`);
    } catch (err) {
      const msg = (err as Error).message;
      results.push({ action: a, ok: false, error: msg, ms: performance.now() - t0 });
      log.warn(
        { action: a.type, units: names, reason: a.reason, err: msg },
        `${a.type} ${names.join(', ')} failed`,
      );
      if (a.type === 'install') for (const i of installs) failed.add(i.name);
      else if (a.type === 'unload') for (const u of unloads) failed.add(u.name);
      else if (a.type !== 'load') failed.add(a.name);
      // The unit's state still gets reported (failed units show as failed in list-units).
      if (a.type === 'start') await hooks.report(a.name).catch(() => undefined);
    }
  };
  for (let i = 0; i < actions.length;) {
    const a = actions[i]!;
    if (a.type !== 'start' && a.type !== 'stop') {
      await runOne(a);
      i++;
      continue;
    }
    // A run of starts (or stops) goes to systemd JOBS_IN_FLIGHT at a time, as systemd runs a boot's
    // jobs side by side; ordering between those units is systemd's (After=/Before=). The run as a
    // whole still ends before the next group begins (every stop before any unload, and so on).
    let j = i;
    while (j < actions.length && actions[j]!.type === a.type) j++;
    await inPool(actions.slice(i, j), JOBS_IN_FLIGHT, runOne);
    i = j;
  }
  await Promise.all(reports);
  return results;
}
