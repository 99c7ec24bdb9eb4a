/**
 * The pipeline (run.ts) over a real file datasource and real files; `apply` is a recorder behind
 * applyPlan's interface (the executor is tested on its own), so what is asserted is what reaches
 * the executor, and that nothing does when the user-data is bad.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCloudinit, type RunOptions } from '../../../src/cloudinit/run.js';
import { FileDatasource } from '../../../src/datasource/index.js';
import type { Datasource, Metadata } from '../../../src/datasource/types.js';
import type { PlannedAction } from '../../../src/target/types.js';
import { recorder } from '../datasource/log-recorder.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'flotilla-ci-run-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

class WithMetadata extends FileDatasource {
  constructor(
    path: string,
    private readonly md: Metadata,
  ) {
    super(path);
  }
  override fetchMetadata(): Promise<Metadata> {
    return Promise.resolve(this.md);
  }
}

async function run(userdata: string | Buffer, over: Partial<RunOptions> = {}, source?: Datasource) {
  const path = join(dir, 'user_data');
  writeFileSync(path, userdata);
  const log = recorder();
  const printed: string[] = [];
  const applied: PlannedAction[][] = [];
  const scripts: [string, string][] = [];
  const code = await runCloudinit({
    sources: [source ?? new FileDatasource(path)],
    root: join(dir, 'root'),
    live: false,
    log,
    print: (l) => printed.push(l),
    apply: (plan) => {
      applied.push([...plan]);
      return Promise.resolve({ changed: [...plan], unchanged: [] });
    },
    runScript: (unit, p) => {
      scripts.push([unit, p]);
      return Promise.resolve();
    },
    select: { timeoutMs: 2000 },
    ...over,
  });
  return { code, log, printed, applied, scripts, path };
}

describe('runCloudinit', { timeout: 30_000 }, () => {
  it('-validate prints the report and exits 1 when it has entries, 0 when clean; applies nothing', async () => {
    const bad = await run('#cloud-config\nbogus: 1\ncoreos:\n  update:\n    reboot-strategy: false\n', {
      validateOnly: true,
    });
    expect(bad.code).toBe(1);
    expect(bad.printed).toEqual([
      'line 2: warning: unrecognized key "bogus"',
      'line 5: error: invalid value false',
    ]);
    expect(bad.applied).toEqual([]);
    const good = await run('#cloud-config\nhostname: a\n', { validateOnly: true });
    expect([good.code, good.printed, good.applied]).toEqual([0, [], []]);
  });

  it('applies a cloud-config through the executor with root and live', async () => {
    let seen: unknown;
    const r = await run('#cloud-config\nhostname: web1\n', {
      apply: (plan, opts) => {
        seen = { n: plan.length, root: opts.root, live: opts.live };
        return Promise.resolve({ changed: [], unchanged: [...plan] });
      },
    });
    expect(r.code).toBe(0);
    expect(seen).toEqual({ n: 1, root: join(dir, 'root'), live: false });
  });

  it('gunzips gzip user-data', async () => {
    const r = await run(gzipSync('#cloud-config\nhostname: zipped\n'));
    expect(r.code).toBe(0);
    expect(r.applied[0]!.map((a) => a.action)).toEqual([{ kind: 'hostname', hostname: 'zipped' }]);
  });

  it('an Ignition config is left to flotilla ignition: message, exit 0, nothing applied', async () => {
    const r = await run('{"ignition":{"version":"3.3.0"}}');
    expect([r.code, r.printed, r.applied]).toEqual([0, ['Detected an Ignition config. Exiting...'], []]);
  });

  it('multi-part MIME is refused with a message, exit 1, nothing applied', async () => {
    const r = await run('Content-Type: multipart/mixed; boundary="b"\n\n--b\n');
    expect([r.code, r.applied]).toEqual([1, []]);
    expect(r.log.text()).toMatch(/Unrecognized user-data format: multi-part MIME user-data is not supported/);
    const ignored = await run('Content-Type: multipart/mixed; boundary="b"\n', { ignoreFailure: true });
    expect([ignored.code, ignored.applied]).toEqual([0, []]);
  });

  it('an unrecognised format and a fatal cloud-config apply nothing and exit 1', async () => {
    const a = await run('hello\n');
    expect([a.code, a.applied]).toEqual([1, []]);
    expect(a.log.text()).toMatch(/line 1: error: must be "#cloud-config" or begin with "#!"/);
    const b = await run('#cloud-config\nhostname: ok\nwrite_files:\n  - path: ../x\n    content: y\n');
    expect([b.code, b.applied]).toEqual([1, []]);
    expect(b.log.text()).toMatch(
      /Failed to parse user-data: line 4: write_files\[0\]\.path: "..\/x" escapes the root/,
    );
  });

  it('gzip magic with a broken stream is refused, naming gzip', async () => {
    const r = await run(Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0x01, 0x02, 0x03]));
    expect([r.code, r.applied]).toEqual([1, []]);
    expect(r.log.text()).toMatch(/user-data: Unable to decode gzip/);
  });

  it('refuses user-data over 16 MiB without applying', async () => {
    const r = await run(Buffer.alloc(16 * 1024 * 1024 + 1, 0x61));
    expect([r.code, r.applied]).toEqual([1, []]);
    expect(r.log.text()).toMatch(/more than the 16777216-byte \(16 MiB\) limit/);
  });

  it('a #! script is written 0744 into the workspace and run only on a live system', async () => {
    const r = await run('#!/bin/sh\necho $private_ipv4\n', { workspace: '/var/lib/ws' });
    expect(r.code).toBe(0);
    const files = r.applied[0]!.filter((a) => a.action.kind === 'file').map(
      (a) => a.action as { path: string; mode: number; contents: Buffer },
    );
    expect(files[0]!.path).toMatch(/^\/var\/lib\/ws\/scripts\/[0-9a-f]{12}$/);
    expect(files[0]!.mode).toBe(0o744);
    expect(files[0]!.contents.toString()).toBe('#!/bin/sh\necho \n');
    expect(files[1]!.contents.toString()).toMatch(/^coreos-cloudinit-[0-9a-f]{12}\.service\n$/);
    expect(r.scripts).toEqual([]);
    expect(r.log.text()).toMatch(/\$private_ipv4 is empty/);
    const live = await run('#!/bin/sh\ntrue\n', { live: true, root: join(dir, 'root') });
    expect(live.scripts).toHaveLength(1);
    expect(live.scripts[0]![0]).toMatch(/^coreos-cloudinit-[0-9a-f]{12}\.service$/);
  });

  it('substitutes the metadata and plans its hostname and keys', async () => {
    const path = join(dir, 'ud');
    writeFileSync(path, '#cloud-config\ncoreos:\n  fleet:\n    public-ip: $private_ipv4\n');
    const md: Metadata = {
      sshPublicKeys: { k: 'ssh-ed25519 AAAA k' },
      hostname: 'md-host',
      privateIPv4: '10.1.2.3',
    };
    const r = await run('', {}, new WithMetadata(path, md));
    expect(r.code).toBe(0);
    const flat = r.applied[0]!.map((a) => a.action);
    expect(flat[0]).toEqual({ kind: 'hostname', hostname: 'md-host' });
    expect(flat[1]).toEqual({ kind: 'user', name: 'core' });
    expect(flat[2]).toMatchObject({ kind: 'authorized-keys', user: 'core', keys: ['ssh-ed25519 AAAA k'] });
    const conf = flat.find((a) => a.kind === 'file' && a.path === '/etc/flotilla/flotilla.conf') as {
      contents: Buffer;
    };
    expect(conf.contents.toString()).toBe('public_ip=10.1.2.3\n');
  });

  it('live: etcd-member and flotilla are queued with no-block after the apply, never in --root mode', async () => {
    const doc = '#cloud-config\ncoreos:\n  etcd2:\n    name: m1\n  fleet:\n    metadata: a=b\n';
    const started: string[][] = [];
    const order: string[] = [];
    const live = await run(doc, {
      live: true,
      apply: (plan) => {
        order.push('apply');
        return Promise.resolve({ changed: [...plan], unchanged: [] });
      },
      startNoBlock: (units) => {
        order.push('start');
        started.push(units);
        return Promise.resolve();
      },
    });
    expect(live.code).toBe(0);
    expect(started).toEqual([['etcd-member.service', 'flotilla.service']]);
    expect(order).toEqual(['apply', 'start']);
    const rooted: string[][] = [];
    await run(doc, { startNoBlock: (u) => (rooted.push(u), Promise.resolve()) });
    expect(rooted).toEqual([]);
  });

  it('no datasource in time: exit 1', async () => {
    const r = await run('', { select: { timeoutMs: 300 } }, new FileDatasource(join(dir, 'missing')));
    expect([r.code, r.applied]).toEqual([1, []]);
    expect(r.log.text()).toMatch(/No datasources available in time/);
  });

  it('an executor failure is "Failed to apply cloud-config", exit 1', async () => {
    const r = await run('#cloud-config\nhostname: a\n', {
      apply: () => Promise.reject(new Error('disk full')),
    });
    expect(r.code).toBe(1);
    expect(r.log.text()).toMatch(/Failed to apply cloud-config: disk full/);
  });

  it('never logs secrets: password hashes, keys, file contents', async () => {
    const r = await run(
      '#cloud-config\nusers:\n  - name: ops\n    passwd: $6$SECRETHASH\n    ssh_authorized_keys: [ssh-ed25519 SECRETKEY]\nwrite_files:\n  - path: /etc/x\n    content: SECRETBODY\nbogus: 1\n',
    );
    expect(r.code).toBe(0);
    expect(r.log.text()).not.toMatch(/SECRETHASH|SECRETKEY|SECRETBODY/);
  });
});
