import { describe, expect, it } from 'vitest';
import {
  NdjsonJournalParser,
  journalArgs,
  readJournal,
  toEntry,
  type JournalEntry,
} from '../../../src/systemd/journal.js';

const bytes = (s: string) => [...Buffer.from(s, 'utf8')];
const line = (o: Record<string, unknown>) => `${JSON.stringify(o)}\n`;
const base = {
  __CURSOR: 's=1;i=1',
  __REALTIME_TIMESTAMP: '1700000000123456',
  _SYSTEMD_UNIT: 'web.service',
  PRIORITY: '6',
  _PID: '42',
};

describe('journal NDJSON parsing', () => {
  it('decodes strings, byte-array MESSAGE and repeated fields', () => {
    const e = toEntry({
      ...base,
      MESSAGE: bytes('caf\u00e9 \u001b[1mbold\u001b[0m'),
      TAG: ['a', 'b'],
      BIN: [bytes('x'), 'y'],
      BIG: null,
    })!;
    expect(e.message).toBe('caf\u00e9 \u001b[1mbold\u001b[0m');
    expect(e.realtime).toBe(1_700_000_000_123.456);
    expect(e.priority).toBe(6);
    expect(e.pid).toBe(42);
    expect(e.unit).toBe('web.service');
    expect(e.fields.TAG).toEqual(['a', 'b']);
    expect(e.fields.BIN).toEqual(['x', 'y']);
    expect(e.fields.BIG).toBeUndefined();
  });

  it('replaces invalid UTF-8 instead of failing', () => {
    expect(toEntry({ ...base, MESSAGE: [0x61, 0xff, 0x62] })!.message).toBe('a\ufffdb');
  });

  it('uses UNIT for systemd messages about a unit', () => {
    expect(toEntry({ __CURSOR: 'c', MESSAGE: 'Started x.', UNIT: 'x.service', _PID: '1' })!.unit).toBe(
      'x.service',
    );
  });

  it('reassembles lines split across chunks, even inside a UTF-8 sequence', () => {
    const p = new NdjsonJournalParser();
    const text =
      line({ ...base, MESSAGE: 'h\u00e9llo \u2603' }) +
      line({ ...base, __CURSOR: 's=1;i=2', MESSAGE: 'two' });
    const buf = Buffer.from(text, 'utf8');
    const out: JournalEntry[] = [];
    for (let i = 0; i < buf.length; i += 3) out.push(...p.push(buf.subarray(i, i + 3)));
    out.push(...p.end());
    expect(out.map((e) => e.message)).toEqual(['h\u00e9llo \u2603', 'two']);
    expect(p.skipped).toBe(0);
  });

  it('skips garbage and entries without a cursor, and flushes a last unterminated line', () => {
    const p = new NdjsonJournalParser();
    const out = [
      ...p.push('not json\n'),
      ...p.push('{"MESSAGE":"no cursor"}\n\n'),
      ...p.push(line({ ...base, MESSAGE: 'ok' })),
      ...p.push(JSON.stringify({ ...base, MESSAGE: 'tail' })),
    ];
    out.push(...p.end());
    expect(out.map((e) => e.message)).toEqual(['ok', 'tail']);
    expect(p.skipped).toBe(2);
  });
});

describe('journalArgs', () => {
  it('builds one argv element per option', () => {
    expect(
      journalArgs({
        unit: 'web.service',
        lines: 5,
        since: new Date(1_700_000_000_500),
        afterCursor: 's=1;i=2',
        follow: true,
      }),
    ).toEqual([
      '--output=json',
      '--all',
      '--no-pager',
      '--quiet',
      '--unit=web.service',
      '--lines=5',
      '--since=@1700000000',
      '--after-cursor=s=1;i=2',
      '--follow',
    ]);
  });

  it('follows from the end when no start point is given', () => {
    expect(journalArgs({ follow: true }).slice(-2)).toEqual(['--follow', '--lines=0']);
  });

  it('refuses bad unit names and values before spawning', () => {
    expect(() => journalArgs({ unit: '$(reboot).service' })).toThrow(
      expect.objectContaining({ code: 'E_UNIT_NAME' }),
    );
    expect(() => journalArgs({ unit: 'a.service --merge' })).toThrow();
    expect(() => journalArgs({ lines: -1 })).toThrow(/lines/);
    expect(() => journalArgs({ since: 'today; rm -rf /' })).toThrow(/time spec/);
    expect(() => journalArgs({ afterCursor: 'x\ny' })).toThrow(/cursor/);
  });
});

/** A stand-in for journalctl: a node script that prints `lines` and then exits or hangs. */
function fakeJournalctl(script: string): string[] {
  return [process.execPath, '-e', script, '--'];
}

describe('readJournal (child process)', () => {
  it('streams entries and ends when journalctl exits 0', async () => {
    const text = line({ ...base, MESSAGE: 'one' }) + line({ ...base, __CURSOR: 'c2', MESSAGE: bytes('two') });
    const r = readJournal(
      { unit: 'web.service' },
      { command: fakeJournalctl(`process.stdout.write(${JSON.stringify(text)})`) },
    );
    const got: string[] = [];
    for await (const e of r) got.push(e.message);
    expect(got).toEqual(['one', 'two']);
  });

  it('passes the argv through (no shell)', async () => {
    const r = readJournal(
      { unit: 'web.service', lines: 3 },
      {
        command: fakeJournalctl(
          `process.stdout.write(JSON.stringify({__CURSOR:'c',MESSAGE:JSON.stringify(process.argv.slice(1))})+'\\n')`,
        ),
      },
    );
    const got: string[] = [];
    for await (const e of r) got.push(e.message);
    expect(JSON.parse(got[0]!)).toEqual([
      '--output=json',
      '--all',
      '--no-pager',
      '--quiet',
      '--unit=web.service',
      '--lines=3',
    ]);
  });

  it('fails with E_JOURNAL when journalctl exits non-zero', async () => {
    const r = readJournal(
      {},
      {
        command: fakeJournalctl(
          `process.stdout.write(${JSON.stringify(line({ ...base, MESSAGE: 'x' }))}); process.stderr.write('No journal files were found.\\n'); process.exit(1)`,
        ),
      },
    );
    const got: string[] = [];
    await expect(
      (async () => {
        for await (const e of r) got.push(e.message);
      })(),
    ).rejects.toMatchObject({
      code: 'E_JOURNAL',
      message: expect.stringContaining('No journal files') as unknown,
    });
    expect(got).toEqual(['x']);
  });

  it('fails with E_JOURNAL when a follow ends because journalctl exited', async () => {
    const r = readJournal({ follow: true }, { command: fakeJournalctl('process.exit(0)') });
    await expect(r.next()).rejects.toMatchObject({ code: 'E_JOURNAL' });
  });

  it('fails with E_JOURNAL when journalctl cannot be started', async () => {
    const r = readJournal({}, { command: ['/nonexistent/journalctl'] });
    await expect(r.next()).rejects.toMatchObject({
      code: 'E_JOURNAL',
      message: expect.stringContaining('cannot run') as unknown,
    });
  });

  it('kills journalctl when the reader is cancelled (break out of for await)', async () => {
    const script = `process.stdout.write(${JSON.stringify(line({ ...base, MESSAGE: 'first' }))}); setInterval(() => {}, 1000)`;
    const r = readJournal({ follow: true }, { command: fakeJournalctl(script) });
    for await (const e of r) {
      expect(e.message).toBe('first');
      break;
    }
    // settled.ts fails the test if the child were still running
  });

  it('close() resolves once the child has exited, SIGKILL when SIGTERM is ignored', async () => {
    const ready = line({ ...base, MESSAGE: 'ready' });
    const r = readJournal(
      { follow: true },
      {
        command: fakeJournalctl(
          `process.on("SIGTERM", () => {}); process.stdout.write(${JSON.stringify(ready)}); setInterval(() => {}, 1000)`,
        ),
      },
    );
    await r.next(); // the child has installed its SIGTERM handler
    const t0 = Date.now();
    await r.close(); // SIGTERM ignored → SIGKILL after 2 s
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1500);
    await expect(r.next()).resolves.toEqual({ value: undefined, done: true });
  });

  it('pauses the child when the consumer lags (backpressure)', async () => {
    const script = `let s = ''; for (let i = 0; i < 2000; i++) s += JSON.stringify({ __CURSOR: 'c' + i, MESSAGE: 'm' + i }) + '\\n'; process.stdout.write(s)`;
    const r = readJournal({}, { command: fakeJournalctl(script), highWater: 10 });
    let n = 0;
    for await (const e of r) {
      expect(e.message).toBe(`m${n}`);
      n++;
      if (n % 100 === 0) await new Promise((res) => setTimeout(res, 1));
    }
    expect(n).toBe(2000);
  });
});
