/**
 * `flotilla migrate-from-fleet` against keys written in fleet's layout (v2 keys API, fleet's JSON,
 * `UnitHash` as 20 byte values, contents under unit/<sha1 of the normal form>) into the real
 * loopback etcd of test/env (3.4, --enable-v2=true), imported through the real fleet API over a
 * real embedded registry (test/unit/cli/harness.ts). Each test writes under its own prefix.
 */
import { createHash } from 'node:crypto';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { etcdEndpoints, describeEtcd } from '../support/testbed.js';
import { startApi, type Api } from '../unit/cli/harness.js';

const ep = (): string => etcdEndpoints![0]!;
let seq = 0;
const prefixes: string[] = [];
const newPrefix = (): string => {
  const p = `/_test-migrate-${process.pid}-${++seq}/fleet/`;
  prefixes.push(p);
  return p;
};

async function v2put(key: string, value: string): Promise<void> {
  const r = await fetch(`${ep()}/v2/keys${key}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ value }).toString(),
  });
  if (r.status !== 200 && r.status !== 201) throw new Error(`v2 PUT ${key}: ${r.status} ${await r.text()}`);
}

async function v2rmdir(key: string): Promise<void> {
  await fetch(`${ep()}/v2/keys${key}?recursive=true`, { method: 'DELETE' });
}

/** fleet's unit hash: SHA-1 of the go-systemd serialization (here the texts are already in that form). */
const sha1 = (normal: string): string => createHash('sha1').update(normal, 'utf8').digest('hex');
const hashBytes = (hex: string): number[] => [...Buffer.from(hex, 'hex')];

const HELLO =
  '[Unit]\nDescription=Hello from fleet\n\n[Service]\nExecStart=/bin/sh -c "while true; do echo hi; sleep 1; done"\n';
const WEB =
  '[Unit]\nDescription=Web %i\n\n[Service]\nExecStart=/bin/sleep 100000\n\n[X-Fleet]\nConflicts=web@*.service\n';
const DB = '[Service]\nExecStart=/bin/sleep 100000\n\n[X-Fleet]\nMachineMetadata=role=db\n';
const OLD = '[Service]\nExecStart=/bin/true\n';
const M1 = '4d3895379af44ec4a4a4b1b2c3d4e5f6';
const M2 = '9f0e1d2c3b4a59687766554433221100';

/** A small fleet cluster's registry, as fleetd and fleetctl left it (fleet.md §3.3). */
async function writeFleetCluster(p: string): Promise<void> {
  const job = async (name: string, body: string, target?: string, machine?: string) => {
    const h = sha1(body);
    await v2put(`${p}unit/${h}`, JSON.stringify({ Raw: body }));
    await v2put(`${p}job/${name}/object`, JSON.stringify({ Name: name, UnitHash: hashBytes(h) }));
    if (target) await v2put(`${p}job/${name}/target-state`, target);
    if (machine) {
      await v2put(`${p}job/${name}/target`, machine);
      await v2put(`${p}job/${name}/job-state`, machine);
      const st = {
        loadState: 'loaded',
        activeState: 'active',
        subState: 'running',
        machineState: { ID: machine },
        unitHash: h,
      };
      await v2put(`${p}states/${name}/${machine}`, JSON.stringify(st));
      await v2put(`${p}state/${name}`, JSON.stringify(st));
    }
  };
  await job('hello.service', HELLO, 'launched', M1);
  await job('web@.service', WEB, 'inactive');
  await job('web@1.service', WEB, 'launched', M2);
  await job('db.service', DB, 'loaded', M1);
  await job('plain.service', OLD); // no target-state key: inactive
  await v2put(
    `${p}unit/${sha1('[Service]\nExecStart=/bin/false\n')}`,
    JSON.stringify({ Raw: '[Service]\nExecStart=/bin/false\n' }),
  );
  const machine = (id: string, ip: string, md: Record<string, string>) =>
    v2put(
      `${p}machines/${id}/object`,
      JSON.stringify({ ID: id, PublicIP: ip, Metadata: md, Capabilities: null, Version: '1.0.0' }),
    );
  await machine(M1, '10.0.0.11', { region: 'eu', role: 'web' });
  await machine(M2, '10.0.0.12', {});
  await v2put(`${p}machines/${M1}/metadata/rack`, 'r7');
  await v2put(`${p}machines/${M2}/metadata/role`, ''); // fleet's mask: deleted
  await v2put(`${p}lease/engine-leader`, JSON.stringify({ MachineID: M1, Version: 1 }));
  await v2put(`${p}engine/version`, '1');
}

describeEtcd("migrate-from-fleet reads fleet's keys from a real etcd (v2 API)", () => {
  let api: Api;
  beforeAll(async () => {
    api = await startApi();
  });
  afterEach(async () => {
    await api.store.delete('', { prefix: true }).catch(() => undefined);
  });
  afterAll(async () => {
    await api?.close();
    for (const p of prefixes) await v2rmdir(p.split('/').slice(0, 2).join('/'));
  });

  const units = async () =>
    Object.fromEntries(
      (await api.registry.listJobs()).map((u) => [u.name, { desired: u.desiredState, hash: u.hash }]),
    );

  it('imports units with their desired states and metadata, says what it leaves, and writes nothing on --dry-run', async () => {
    const p = newPrefix();
    await writeFleetCluster(p);

    const before = (await api.store.range('')).revision;
    const dry = await api.run([
      'migrate-from-fleet',
      `--etcd-endpoint=${ep()}`,
      `--prefix=${p}`,
      '--dry-run',
    ]);
    expect(dry.err).toBe('');
    expect(dry.code).toBe(0);
    expect(dry.out).toContain(`Read 32 keys under ${p} from ${ep()}\n`);
    expect(dry.out).toContain('Would import unit hello.service (launched)\n');
    expect(dry.out).toContain(
      'Dry run: 5 unit(s) and 2 metadata key(s) would be imported; nothing was written\n',
    );
    expect(await units()).toEqual({});
    expect((await api.store.range('')).revision).toBe(before);

    const r = await api.run(['migrate-from-fleet', `--etcd-endpoint=${ep()}`, `--prefix=${p}`]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out.split('\n')).toEqual([
      `Read 32 keys under ${p} from ${ep()}`,
      'Unit db.service imported (loaded)',
      'Unit hello.service imported (launched)',
      'Unit plain.service imported (inactive)',
      'Unit web@.service imported (inactive)',
      'Unit web@1.service imported (launched)',
      `Metadata of machine ${M1.slice(0, 8)}...: rack=r7`,
      `Metadata of machine ${M2.slice(0, 8)}...: role removed (fleet's "" mask)`,
      'Not carried over:',
      "  engine/version: fleet's engine bookkeeping: flotilla's engine elects its own leader",
      "  lease/engine-leader: fleet's engine bookkeeping: flotilla's engine elects its own leader",
      `  job/db.service/target: schedule (fleet ran it on ${M1.slice(0, 8)}...): flotilla's engine places it again`,
      `  job/hello.service/target: schedule (fleet ran it on ${M1.slice(0, 8)}...): flotilla's engine places it again`,
      `  job/web@1.service/target: schedule (fleet ran it on ${M2.slice(0, 8)}...): flotilla's engine places it again`,
      '  unit/: 1 unit contents no job uses (fleet never removed old contents)',
      "  states/db.service: 2 published state record(s): runtime state, flotilla's agents publish their own",
      "  states/hello.service: 2 published state record(s): runtime state, flotilla's agents publish their own",
      "  states/web@1.service: 2 published state record(s): runtime state, flotilla's agents publish their own",
      `  machines/${M1}/object: machine ${M1.slice(0, 8)}... (10.0.0.11) presence with metadata region=eu,role=web from its fleet.conf: set metadata=region=eu,role=web in its flotilla.conf; it joins when its flotilla agent starts`,
      `  machines/${M2}/object: machine ${M2.slice(0, 8)}... (10.0.0.12) presence; it joins when its flotilla agent starts`,
      'Imported 5 unit(s) and 2 metadata key(s); 11 item(s) not carried over',
      '',
    ]);
    expect(await units()).toEqual({
      'db.service': { desired: 'loaded', hash: sha1(DB) },
      'hello.service': { desired: 'launched', hash: sha1(HELLO) },
      'plain.service': { desired: 'inactive', hash: sha1(OLD) },
      'web@.service': { desired: 'inactive', hash: sha1(WEB) },
      'web@1.service': { desired: 'launched', hash: sha1(WEB) },
    });
    // fleetctl cat prints fleet's unit unchanged.
    expect((await api.run(['cat', 'hello.service'])).out).toBe(HELLO.trimEnd() + '\n');
    const meta = (await api.store.range('')).kvs
      .filter((k) => k.key.includes('machine-metadata/'))
      .map((k) => [k.key.slice(k.key.indexOf('machine-metadata/')), k.value]);
    expect(meta).toEqual([
      [`machine-metadata/${M1}/rack`, '"r7"'],
      [`machine-metadata/${M2}/role`, '""'],
    ]);

    // Again: no unit is written (the metadata PATCH is repeated: it sets the same values).
    const jobs = async () => (await api.store.range('job/')).kvs.map((k) => [k.key, k.modRevision]);
    const before2 = await jobs();
    const again = await api.run(['migrate-from-fleet', `--etcd-endpoint=${ep()}`, `--prefix=${p}`]);
    expect(again.code, again.err).toBe(0);
    expect(again.out).toContain('Unit hello.service already in flotilla with the same contents and state\n');
    expect(again.out).toContain('Imported 0 unit(s)');
    expect(await jobs()).toEqual(before2);
    expect(await units()).toMatchObject({ 'hello.service': { desired: 'launched' } });
  });

  it('refuses malformed fleet keys, naming every one, before writing anything', async () => {
    const p = newPrefix();
    await writeFleetCluster(p);
    await v2put(`${p}job/bad.service/object`, JSON.stringify({ Name: 'bad.service', UnitHash: [1, 2, 3] }));
    await v2put(
      `${p}job/lost.service/object`,
      JSON.stringify({ Name: 'lost.service', UnitHash: hashBytes(sha1('gone')) }),
    );
    await v2put(`${p}job/hello.service/target-state`, 'running');
    const r = await api.run(['migrate-from-fleet', `--etcd-endpoint=${ep()}`, `--prefix=${p}`]);
    expect(r.code).toBe(1);
    expect(r.err).toBe(
      "fleet's registry has 3 malformed key(s); nothing was imported:\n" +
        `  job/bad.service/object: not fleet's {"Name":…,"UnitHash":[20 bytes]}\n` +
        '  job/hello.service/target-state: "running" is not inactive, loaded or launched\n' +
        `  job/lost.service/object: its contents unit/${sha1('gone')} are missing\n`,
    );
    expect(await units()).toEqual({});
  });

  it('leaves a unit flotilla already has with other contents, and imports the rest', async () => {
    const p = newPrefix();
    await writeFleetCluster(p);
    await api.run(['migrate-from-fleet', `--etcd-endpoint=${ep()}`, `--prefix=${p}`, '--dry-run']);
    const other = '[Service]\nExecStart=/bin/sleep 5\n';
    await api.registry.createUnit('hello.service', other, 'inactive');
    const r = await api.run(['migrate-from-fleet', `--etcd-endpoint=${ep()}`, `--prefix=${p}`]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain(
      `  job/hello.service/: flotilla already has hello.service with other contents (hash ${sha1(other).slice(0, 7)}, fleet's ${sha1(HELLO).slice(0, 7)}): destroy it in flotilla first to take fleet's\n`,
    );
    expect(await units()).toMatchObject({
      'hello.service': { desired: 'inactive', hash: sha1(other) },
      'db.service': { desired: 'loaded' },
    });
  });

  it('says clearly when the prefix is empty, the endpoint is down or not a URL', async () => {
    const p = newPrefix();
    const none = await api.run(['migrate-from-fleet', `--etcd-endpoint=${ep()}`, `--prefix=${p}`]);
    expect(none).toMatchObject({ code: 1 });
    expect(none.err).toBe(
      `etcd at ${ep()} has no keys under ${p} (is fleet's etcd_key_prefix different? give --prefix)\n`,
    );
    const down = await api.run(['migrate-from-fleet', '--etcd-endpoint=http://127.0.0.1:9', `--prefix=${p}`]);
    expect(down.code).toBe(1);
    expect(down.err).toMatch(
      /^cannot read fleet's keys from etcd: http:\/\/127\.0\.0\.1:9: connect ECONNREFUSED/,
    );
    const bad = await api.run(['migrate-from-fleet', '--etcd-endpoint=nope', `--prefix=${p}`]);
    expect(bad.err).toBe('--etcd-endpoint "nope" is not a URL\n');
    const tls = await api.run(['migrate-from-fleet', `--etcd-endpoint=${ep()}`, '--etcd-cafile=/x.pem']);
    expect(tls.err).toContain('is plain http but TLS files were given');
    const pre = await api.run(['migrate-from-fleet', `--etcd-endpoint=${ep()}`, '--prefix=fleet']);
    expect(pre.err).toContain('--prefix "fleet" is not an etcd v2 key prefix');
    expect((await api.run(['migrate-from-fleet'])).code).toBe(64);
  });
});
