/** SubsystemHost (src/daemon/host.ts): start order, reverse stop, reload, status, failures. */
import { describe, expect, it } from 'vitest';
import { SubsystemHost } from '../../../src/daemon/host.js';
import { nullLogger, type Logger } from '../../../src/lib/log.js';
import type {
  ReloadOutcome,
  StopMode,
  Subsystem,
  SubsystemContext,
  SubsystemStatus,
} from '../../../src/daemon/subsystem.js';

interface Cfg {
  v: number;
}

/** A subsystem that records what it is asked into a shared journal. */
class Recorder implements Subsystem<Cfg> {
  state: SubsystemStatus['state'] = 'stopped';
  v = 0;
  constructor(
    readonly name: string,
    private readonly journal: string[],
    private readonly opts: {
      failStart?: boolean;
      failReload?: boolean;
      failStop?: boolean;
      required?: boolean;
    } = {},
  ) {}
  get required(): boolean {
    return this.opts.required ?? false;
  }
  start(ctx: SubsystemContext<Cfg>): Promise<void> {
    this.journal.push(`start ${this.name} v${ctx.config.v}`);
    if (this.opts.failStart) return Promise.reject(new Error(`${this.name} refuses`));
    this.v = ctx.config.v;
    this.state = 'running';
    return Promise.resolve();
  }
  reload(next: Cfg): Promise<ReloadOutcome> {
    this.journal.push(`reload ${this.name} v${next.v}`);
    if (this.opts.failReload) return Promise.reject(new Error('bad reload'));
    this.v = next.v;
    return Promise.resolve({ applied: ['v'], needRestart: [`${this.name}_key`, 'shared_key'] });
  }
  stop(mode: StopMode): Promise<void> {
    this.journal.push(`stop ${this.name} ${mode}`);
    this.state = 'stopped';
    return this.opts.failStop ? Promise.reject(new Error('stuck')) : Promise.resolve();
  }
  status(): SubsystemStatus {
    return { state: this.state, v: this.v };
  }
}

function recordingLog(lines: string[]): Logger {
  return { ...nullLogger, error: (_f, m) => void lines.push(m) };
}

const ctx = (v: number): SubsystemContext<Cfg> => ({
  config: { v },
  log: nullLogger,
  machineId: 'm1',
  signal: new AbortController().signal,
});

describe('SubsystemHost', () => {
  it('starts in order, reloads all, stops in reverse, and reports each status', async () => {
    const j: string[] = [];
    const host = new SubsystemHost(
      [new Recorder('a', j), new Recorder('b', j), new Recorder('c', j)],
      nullLogger,
    );
    await host.start(ctx(1));
    expect(host.status()).toEqual({
      a: { state: 'running', v: 1 },
      b: { state: 'running', v: 1 },
      c: { state: 'running', v: 1 },
    });
    const { needRestart } = await host.reload({ v: 2 });
    expect(needRestart.sort()).toEqual(['a_key', 'b_key', 'c_key', 'shared_key']);
    await host.stop('restart');
    expect(j).toEqual([
      'start a v1',
      'start b v1',
      'start c v1',
      'reload a v2',
      'reload b v2',
      'reload c v2',
      'stop c restart',
      'stop b restart',
      'stop a restart',
    ]);
    expect(host.status().b).toEqual({ state: 'stopped', v: 2 });
  });

  it('leaves out a part that fails to start, says why, and neither reloads nor stops it', async () => {
    const j: string[] = [];
    const errors: string[] = [];
    const host = new SubsystemHost(
      [new Recorder('a', j), new Recorder('b', j, { failStart: true }), new Recorder('c', j)],
      recordingLog(errors),
    );
    await host.start(ctx(1));
    expect(host.status().b).toEqual({ state: 'failed', reason: 'b refuses' });
    expect(host.status().c).toEqual({ state: 'running', v: 1 });
    expect(errors).toEqual(['b: cannot start; running without it']);
    await host.reload({ v: 2 });
    await host.stop('leave');
    expect(j.filter((l) => l.includes(' b '))).toEqual(['start b v1']);
    expect(j.slice(-2)).toEqual(['stop c leave', 'stop a leave']);
  });

  it('a required part that fails stops the ones already started, in reverse, and throws', async () => {
    const j: string[] = [];
    const host = new SubsystemHost(
      [new Recorder('a', j), new Recorder('b', j), new Recorder('c', j, { failStart: true, required: true })],
      nullLogger,
    );
    await expect(host.start(ctx(1))).rejects.toThrow('c refuses');
    expect(j).toEqual(['start a v1', 'start b v1', 'start c v1', 'stop b leave', 'stop a leave']);
  });

  it('a failed reload or stop is logged and the others go on', async () => {
    const j: string[] = [];
    const errors: string[] = [];
    const host = new SubsystemHost(
      [
        new Recorder('a', j, { failStop: true }),
        new Recorder('b', j, { failReload: true }),
        new Recorder('c', j),
      ],
      recordingLog(errors),
    );
    await host.start(ctx(1));
    const { needRestart } = await host.reload({ v: 3 });
    expect(needRestart.sort()).toEqual(['a_key', 'c_key', 'shared_key']);
    expect(host.status().b).toEqual({ state: 'running', v: 1 });
    await host.stop('leave');
    expect(j.slice(-3)).toEqual(['stop c leave', 'stop b leave', 'stop a leave']);
    expect(errors).toEqual(['b: reload failed', 'a: stop failed']);
  });

  it('refuses two parts with one name', () => {
    expect(() => new SubsystemHost([new Recorder('a', []), new Recorder('a', [])], nullLogger)).toThrow(
      /registered twice/,
    );
  });
});
