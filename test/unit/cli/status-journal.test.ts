/**
 * status and journal: the CLI's side of the per-unit status/journal contract
 * (/work/briefs/contract-status-journal.md). The server is the real ApiServer with the real FleetV1
 * and embedded registry; the two contract endpoints come from `statusJournalStandIn` (harness.ts),
 * a small test implementation of the contract, because the agent side is being built in parallel.
 * What is checked: the requests the CLI makes, how it prints and streams the answers, its exit
 * codes, and that `journal -f` stops cleanly on SIGINT (in-process and as a real process).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, seed, startApi, statusJournalStandIn, type Api, type ContractStandIn } from './harness.js';
import { main } from '../../../src/cli/main.js';
import { spawnCli } from './child.js';

let api: Api;
let contract: ContractStandIn;

beforeAll(async () => {
  api = await startApi((registry) => {
    contract = statusJournalStandIn(registry);
    return [contract.handler];
  });
  await seed(api);
});
afterAll(async () => {
  await api.close();
});

describe('status', () => {
  it("prints the hosting machine's systemctl status and exits with its code", async () => {
    const r = await api.run(['status', 'hello']);
    expect(r.code).toBe(0);
    expect(r.err).toBe('');
    expect(r.out).toMatch(/^● hello\.service\n {5}Loaded: .*\n {5}Active: active \(running\)\n/);
    expect(r.out.split('\n').filter((l) => l.startsWith('log line'))).toHaveLength(10);
    contract.exitCodes.set('hello.service', 3);
    expect((await api.run(['status', 'hello.service'])).code).toBe(3);
    contract.exitCodes.clear();
  });

  it('separates several units with a blank line and stops at the first non-zero exit', async () => {
    contract.exitCodes.set('web@1.service', 4);
    const r = await api.run(['status', '--lines=1', 'hello.service', 'web@1.service', 'db.service']);
    contract.exitCodes.clear();
    expect(r.code).toBe(4);
    expect(r.out).toContain('log line 1 of hello.service\n\n● web@1.service\n');
    expect(r.out).not.toContain('db.service');
  });

  it("prints the earlier statuses, then fleetctl's message for a unit that is not loaded", async () => {
    const r = await api.run(['status', 'hello.service', 'web@.service']);
    expect(r.code).toBe(1);
    expect(r.out).toContain('● hello.service');
    expect(r.err).toBe('Unit web@.service does not appear to be loaded.\n');
  });

  it('exits 255 when the hosting machine is unreachable (fleetctl: SSH failure)', async () => {
    contract.unreachable.add('hello.service');
    const r = await api.run(['status', 'hello.service']);
    contract.unreachable.clear();
    expect(r).toEqual({
      code: 255,
      out: '',
      err:
        `Unable to reach the machine of unit hello.service: machine a1b2c3d4e5f60718293a4b5c6d7e8f90 (10.214.0.99) ` +
        'is unreachable: connect ECONNREFUSED 10.214.0.99:54728\n',
    });
  });

  it('says so when the agent does not serve the endpoint', async () => {
    const bare = await startApi();
    await seed(bare);
    const r = await bare.run(['status', 'hello.service']);
    await bare.close();
    expect(r).toEqual({
      code: 1,
      out: '',
      err: 'status: this agent does not serve status (upgrade flotilla on the cluster)\n',
    });
  });
});

describe('journal', () => {
  it('asks for --lines and --output and prints the stream', async () => {
    contract.journalRequests.length = 0;
    const r = await api.run(['journal', '--lines=3', '--output=cat', 'hello']);
    expect(r).toEqual({
      code: 0,
      out: 'cat hello.service line 1\ncat hello.service line 2\ncat hello.service line 3\n',
      err: '',
    });
    expect(Object.fromEntries(contract.journalRequests[0]!)).toEqual({
      lines: '3',
      follow: 'false',
      output: 'cat',
    });
    const d = await api.run(['journal', '--sudo', '--ssh-port=2222', 'hello.service']);
    expect(d.out.split('\n').filter(Boolean)).toHaveLength(10);
    expect(Object.fromEntries(contract.journalRequests[1]!)).toEqual({
      lines: '10',
      follow: 'false',
      output: 'short',
    });
  });

  it('-f streams entries as they arrive until SIGINT, then exits 130', async () => {
    let out = '';
    const running = main(
      ['journal', '-f', '-n', '1', 'hello.service'],
      { out: (s) => (out += s), err: () => undefined },
      { FLEETCTL_ENDPOINT: api.endpoint },
    );
    // Entries arrive while the command is still running: it streams, it does not buffer.
    await expect.poll(() => out, { timeout: 5000, interval: 20 }).toContain('follow 3\n');
    expect(out.startsWith('short hello.service line 1\nshort hello.service follow 1\n')).toBe(true);
    process.emit('SIGINT');
    expect(await running).toBe(130);
    expect(Object.fromEntries(contract.journalRequests.at(-1)!)).toMatchObject({
      follow: 'true',
      lines: '1',
    });
  });

  it('on SIGINT the CLI closes its connection (so the agent can stop journalctl)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'flotilla-journal-'));
    const sock = join(dir, 's.sock');
    let closed = false;
    const server = createServer((req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
      const t = setInterval(() => res.write('tick\n'), 20);
      res.on('close', () => {
        clearInterval(t);
        closed = true;
      });
    });
    await new Promise<void>((resolve) => server.listen(sock, resolve));
    let out = '';
    const running = main(
      ['journal', '-f', 'x.service'],
      { out: (s) => (out += s), err: () => undefined },
      {
        FLEETCTL_ENDPOINT: `unix://${sock}`,
      },
    );
    await expect.poll(() => out, { timeout: 5000, interval: 20 }).toContain('tick\ntick\n');
    expect(closed).toBe(false);
    process.emit('SIGINT');
    expect(await running).toBe(130);
    await expect.poll(() => closed, { timeout: 5000, interval: 20 }).toBe(true);
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('as a real process: Ctrl-C (SIGINT) ends `journal --follow` with 130, output intact', async () => {
    const child = spawnCli(['journal', '--follow', '--lines=2', 'hello.service'], {
      FLEETCTL_ENDPOINT: api.endpoint,
    });
    let out = '';
    let err = '';
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await expect.poll(() => out, { timeout: 30_000, interval: 50 }).toContain('follow 2\n');
    child.kill('SIGINT');
    expect(await exited).toBe(130);
    expect(err).toBe('');
    expect(out).toMatch(
      /^short hello\.service line 1\nshort hello\.service line 2\nshort hello\.service follow 1\n/,
    );
  }, 60_000);

  it('a connection lost mid-stream exits 1 with a message, not as a clean end', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'flotilla-journal-'));
    const sock = join(dir, 's.sock');
    const server = createServer((req, res) => {
      if (req.url?.startsWith('/fleet/v1/')) {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end('{}');
        return;
      }
      res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.write('entry 1\n');
      setTimeout(() => res.destroy(), 100);
    });
    await new Promise<void>((resolve) => server.listen(sock, resolve));
    const r = await runCli(['journal', '-f', 'hello.service'], { FLEETCTL_ENDPOINT: `unix://${sock}` });
    server.close();
    rmSync(dir, { recursive: true, force: true });
    expect(r.code).toBe(1);
    expect(r.out).toBe('entry 1\n');
    expect(r.err).toMatch(/^Error reading the journal of unit hello\.service: /);
  });

  it('SIGTERM ends a follow with 143', async () => {
    let out = '';
    const running = main(
      ['journal', '-f', 'hello.service'],
      { out: (s) => (out += s), err: () => undefined },
      {
        FLEETCTL_ENDPOINT: api.endpoint,
      },
    );
    await expect.poll(() => out, { timeout: 5000, interval: 20 }).toContain('follow 1\n');
    process.emit('SIGTERM');
    expect(await running).toBe(143);
  });
});
