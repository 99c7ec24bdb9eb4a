/**
 * `[Container] Environment=` values are secrets: they must never sit in a world-readable file. The
 * agent's real install path on a temp dir: ContainerUnits.prepareInstall writes the run spec, the
 * UnitFileStore writes the generated service as systemd will read it. The service (0644) names the
 * variables only; the run spec (0600) has the values, and the runner builds the container's
 * environment from it.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { ContainerUnits } from '../../../src/container/units.js';
import { containerEnvironment, readRunSpec } from '../../../src/container/runner.js';
import { nullLogger } from '../../../src/lib/log.js';
import { UnitFileStore } from '../../../src/systemd/unit-files.js';
import { UnitFile } from '../../../src/unit/index.js';
import { FakeDocker } from '../../../src/docker/fake.js';

const SECRET = 'hunter2-Zq81xP';
const OTHER = 'tok-77a1c9';
const BODY = [
  '[Unit]',
  'Description=db client',
  '[Container]',
  'Image=busybox:latest',
  'Exec=sleep 1000',
  `Environment=DB_PASSWORD=${SECRET} "API_TOKEN=${OTHER} x"`,
  'Environment=PLAIN=1',
  'EnvironmentFile=-/etc/app.env',
  '[Service]',
  'Restart=on-failure',
  '',
].join('\n');
const HASH = UnitFile.parse(BODY).hash();

let dir: string;
let cu: ContainerUnits;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'flotilla-secrets-'));
  cu = new ContainerUnits({
    docker: new FakeDocker(),
    machineID: 'cafebabe00000000000000000000cafe',
    dockerSocket: '/var/run/docker.sock',
    specDir: join(dir, 'containers'),
    dataDir: dir,
    log: nullLogger,
    trigger: () => undefined,
    publish: () => undefined,
    runner: { node: '/usr/bin/node', entry: '/opt/flotilla/dist/container/runner-main.js' },
  });
});
afterEach(() => {
  cu.close();
  rmSync(dir, { recursive: true, force: true });
});

const mode = (p: string) => statSync(p).mode & 0o777;

it('the 0644 generated service has no Environment= value; the 0600 run spec has them', async () => {
  const store = new UnitFileStore(join(dir, 'units'));
  const text = cu.prepareInstall('db.service', HASH, BODY);
  const { path } = await store.write('db.service', text);

  // The unit file systemd reads (and `systemctl cat` shows to anyone).
  expect(mode(path)).toBe(0o644);
  const installed = readFileSync(path, 'utf8');
  expect(installed).not.toContain(SECRET);
  expect(installed).not.toContain(OTHER);
  expect(installed).not.toMatch(/^Environment=/m);
  const gen = UnitFile.parse(installed);
  expect(gen.get('X-Flotilla', 'EnvironmentNames')).toBe('DB_PASSWORD API_TOKEN PLAIN');
  // The rest of [Container] is still there for the reader.
  expect(gen.get('X-Container', 'Image')).toBe('busybox:latest');
  expect(gen.get('X-Container', 'EnvironmentFile')).toBe('-/etc/app.env');
  expect(gen.get('X-Flotilla', 'Spec')).toBe(cu.specPath('db.service'));

  // The run spec: root only, with the values.
  const specPath = cu.specPath('db.service');
  expect(mode(specPath)).toBe(0o600);
  expect(readFileSync(specPath, 'utf8')).toContain(SECRET);

  // The runner's view of it: the container gets every variable with its value.
  const run = readRunSpec(specPath);
  expect(containerEnvironment(run.container, () => '')).toEqual([
    `DB_PASSWORD=${SECRET}`,
    `API_TOKEN=${OTHER} x`,
    'PLAIN=1',
  ]);
});

it('the generated service is recognised after a restart without the values (hash of the submitted unit)', () => {
  const text = cu.prepareInstall('db.service', HASH, BODY);
  const gen = UnitFile.parse(text);
  expect(gen.get('X-Flotilla', 'SourceHash')).toBe(HASH);
});

it('a unit without Environment= gets no EnvironmentNames=', () => {
  const body = '[Container]\nImage=busybox:latest\n';
  const text = cu.prepareInstall('plain.service', UnitFile.parse(body).hash(), body);
  expect(UnitFile.parse(text).get('X-Flotilla', 'EnvironmentNames')).toBeUndefined();
});

it('a corrupt run spec is reported without quoting its contents', () => {
  const p = join(dir, 'corrupt.json');
  writeFileSync(p, `${SECRET}-not-json`);
  expect(() => readRunSpec(p)).toThrow(
    `container spec ${p}: invalid JSON (the agent writes this file; restart the unit through flotilla to rewrite it)`,
  );
  writeFileSync(p, `{"env":"${SECRET}" x}`);
  let msg = '';
  try {
    readRunSpec(p);
  } catch (e) {
    msg = (e as Error).message;
  }
  expect(msg).toMatch(/invalid JSON at byte \d+ /);
  expect(msg).not.toContain(SECRET);
});

it('an Environment= error names the word or variable, never the value', () => {
  const bad = (line: string) => {
    const body = `[Container]\nImage=busybox:latest\n${line}\n`;
    try {
      cu.prepareInstall('e.service', UnitFile.parse(body).hash(), body);
    } catch (e) {
      return (e as Error).message;
    }
    return 'accepted';
  };
  expect(bad(`Environment=PASSWORD= ${SECRET}`)).toBe(
    'e.service: [Container] Environment: word 2 is not NAME=VALUE (quote a value with spaces: "NAME=a b")',
  );
  expect(bad(`Environment="PASSWORD=${SECRET}`)).toBe(
    'e.service: [Container] Environment: unterminated double quote',
  );
  expect(bad(`Environment=1X=${SECRET}`)).toBe(
    'e.service: [Container] Environment: "1X" is not a valid variable name',
  );
});
