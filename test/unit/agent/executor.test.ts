/**
 * The executor's order and width over the in-memory FakeSystemdManager (behind the SystemdManager
 * interface), with start/stop jobs held open so their overlap can be counted: a group of starts (or
 * stops) runs side by side, at most JOBS_IN_FLIGHT jobs at once; one group ends before the next one
 * begins; a failing start fails only its own unit, whose state is still reported.
 */
import { describe, expect, it } from 'vitest';
import { execute, JOBS_IN_FLIGHT, type ExecutorHooks } from '../../../src/agent/executor.js';
import type { AgentAction } from '../../../src/agent/planner.js';
import { nullLogger } from '../../../src/lib/log.js';
import { FakeSystemdManager } from '../../../src/systemd/fake.js';
import type { JobOptions, JobOutcome } from '../../../src/systemd/manager.js';

const quiet = nullLogger;

/** The fake, with every start and stop job taking `ms`, and a log of job begins and ends. */
class SlowJobs extends FakeSystemdManager {
  inFlight = 0;
  maxInFlight = 0;
  readonly events: string[] = [];
  constructor(private readonly ms: number) {
    super();
  }
  private async slow(kind: string, name: string, job: () => Promise<JobOutcome>): Promise<JobOutcome> {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    this.events.push(`${kind}+ ${name}`);
    try {
      await new Promise((r) => setTimeout(r, this.ms));
      return await job();
    } finally {
      this.inFlight--;
      this.events.push(`${kind}- ${name}`);
    }
  }
  override start(name: string, opts?: JobOptions): Promise<JobOutcome> {
    return this.slow('start', name, () => super.start(name, opts));
  }
  override stop(name: string, opts?: JobOptions): Promise<JobOutcome> {
    return this.slow('stop', name, () => super.stop(name, opts));
  }
  override uninstallMany(names: readonly string[]): Promise<void> {
    this.events.push(`unload ${names.join(',')}`);
    return super.uninstallMany(names);
  }
}

function hooks(reported: string[]): ExecutorHooks {
  return {
    installed: () => undefined,
    report: (name) => {
      reported.push(name);
      return Promise.resolve();
    },
    jobState: () => undefined,
  };
}

const names = (n: number, stem: string) => Array.from({ length: n }, (_, i) => `${stem}-${i + 1}.service`);
const body = '[Service]\nExecStart=/bin/sleep 1000\n';

describe('execute', () => {
  it(`runs a group of starts side by side, at most ${JOBS_IN_FLIGHT} jobs at once`, async () => {
    const sd = new SlowJobs(20);
    const units = names(100, 'web');
    const actions: AgentAction[] = [
      ...units.map((name) => ({ type: 'install' as const, name, hash: 'h', body, reason: 'scheduled here' })),
      { type: 'load', names: units, reason: 'files changed' },
      ...units.map((name) => ({ type: 'start' as const, name, reason: 'desired launched' })),
    ];
    const results = await execute(sd, actions, hooks([]), quiet);
    expect(results.filter((r) => !r.ok)).toEqual([]);
    expect(sd.maxInFlight).toBe(JOBS_IN_FLIGHT);
    for (const u of units) expect((await sd.state(u)).activeState).toBe('active');
  });

  it('finishes every stop before the unloads, and a failed start fails only its unit', async () => {
    const sd = new SlowJobs(5);
    const old = names(10, 'old');
    const fresh = names(10, 'new');
    await sd.installMany([...old, ...fresh].map((name) => ({ name, contents: body })));
    for (const u of old) await sd.start(u);
    sd.events.length = 0;
    sd.fail('new-3.service', 'start', 'failed', 'exit-code');
    const reported: string[] = [];
    const actions: AgentAction[] = [
      ...old.map((name) => ({ type: 'stop' as const, name, reason: 'unscheduled' })),
      ...old.map((name) => ({ type: 'unload' as const, name, reason: 'unscheduled' })),
      ...fresh.map((name) => ({ type: 'start' as const, name, reason: 'desired launched' })),
    ];
    const results = await execute(sd, actions, hooks(reported), quiet);
    const unloadAt = sd.events.findIndex((e) => e.startsWith('unload '));
    const lastStopEnd = sd.events.map((e) => e.startsWith('stop- ')).lastIndexOf(true);
    const firstStart = sd.events.findIndex((e) => e.startsWith('start+ '));
    expect(lastStopEnd).toBeLessThan(unloadAt);
    expect(unloadAt).toBeLessThan(firstStart);
    expect(sd.events.filter((e) => e.startsWith('stop+ '))).toHaveLength(10);
    expect(results.filter((r) => !r.ok).map((r) => r.action)).toEqual([
      { type: 'start', name: 'new-3.service', reason: 'desired launched' },
    ]);
    expect(reported).toEqual(['new-3.service']);
    for (const u of fresh.filter((n) => n !== 'new-3.service'))
      expect((await sd.state(u)).activeState).toBe('active');
  });
});
