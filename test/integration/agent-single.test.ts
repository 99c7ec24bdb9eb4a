/**
 * The agent on one real systemd machine with the embedded registry (the single-machine default):
 * started as a Type=notify service inside m1, driven through the real CLI. Its socket, data dir and
 * units dir are private to this test, so the cluster agents in the same machine are not disturbed.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { makePki, type Pki } from '../support/certs.js';
import { describeSystemd, machineExec, machineIp, machineProject } from '../support/testbed.js';

const M = 'm1';
const UNIT = 'flotilla-single-test.service';
const SOCK = '/run/flotilla-single-test/fleet.sock';
const PORT = 46541;
const CONF = '/etc/flotilla-single-test/flotilla.conf';
const PROXY_PORT = 46542;
const id = Math.random().toString(16).slice(2, 8);

function sh(...cmd: string[]): string {
  return machineExec(M, ...cmd);
}
function shRc(...cmd: string[]): { rc: number; out: string } {
  try {
    return { rc: 0, out: sh(...cmd) };
  } catch (err) {
    const e = err as { status?: number; stdout?: string; stderr?: string };
    return { rc: e.status ?? 1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}
function ctl(...args: string[]): { rc: number; out: string } {
  return shRc('/usr/local/bin/node', `${machineProject}/bin/flotilla`, `--endpoint=unix://${SOCK}`, ...args);
}
function put(path: string, text: string): void {
  execFileSync(
    'bash',
    [
      `${process.env.TESTENV_DIR ?? 'test/env'}/exec.sh`,
      M,
      'sh',
      '-c',
      'mkdir -p "$(dirname "$1")" && cat > "$1"',
      '_',
      path,
    ],
    {
      input: text,
    },
  );
}
const mainPid = (unit: string) => sh('systemctl', 'show', '-p', 'MainPID', '--value', unit).trim();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Run the agent as a transient Type=notify service; systemd-run returns once READY=1 arrived. */
function startAgent(): void {
  sh(
    'systemd-run',
    `--unit=${UNIT}`,
    '--property=Type=notify',
    '--property=NotifyAccess=all',
    '/usr/local/bin/node',
    `${machineProject}/bin/flotilla`,
    'agent',
    `--config=${CONF}`,
    `--socket=${SOCK}`,
    '--data-dir=/var/lib/flotilla-single-test',
    '--units-directory=/run/flotilla/single-test-units',
    '--metadata=role=single',
    `--api-listen=${machineIp(M)}:${PORT}`,
    '--api-cafile=/etc/flotilla-single-test/ca.pem',
    '--api-certfile=/etc/flotilla-single-test/server.pem',
    '--api-keyfile=/etc/flotilla-single-test/server.key',
  );
}

describeSystemd('agent with the embedded registry on one machine', () => {
  let pki: Pki;

  beforeAll(() => {
    pki = makePki();
    for (const [name, file] of [
      ['ca.pem', pki.ca],
      ['server.pem', pki.serverCert],
      ['server.key', pki.serverKey],
    ] as const) {
      put(`/etc/flotilla-single-test/${name}`, readFileSync(file, 'utf8'));
    }
    put(CONF, '# flotilla-single-test\n');
    shRc('systemctl', 'stop', UNIT);
    shRc('systemctl', 'reset-failed', UNIT);
    sh('rm', '-rf', '/var/lib/flotilla-single-test', '/run/flotilla-single-test');
    startAgent();
    put(
      `/root/single-test/hello-${id}.service`,
      '[Unit]\nDescription=single test\n\n[Service]\nExecStart=/bin/sleep 100000\n',
    );
  }, 60_000);

  afterAll(() => {
    shRc('systemctl', 'stop', UNIT);
    shRc('systemctl', 'reset-failed', UNIT);
    shRc('rm', '-rf', '/etc/flotilla-single-test', '/root/single-test');
    if (pki) rmSync(pki.dir, { recursive: true, force: true });
  });

  it('is ready (READY=1 reached systemd) and announces itself', () => {
    expect(sh('systemctl', 'is-active', UNIT).trim()).toBe('active');
    const r = ctl('list-machines', '--no-legend');
    expect(r.rc).toBe(0);
    expect(r.out).toMatch(
      new RegExp(`^[0-9a-f]{8}\\.\\.\\.\\t${machineIp(M).replace(/\./g, '\\.')}\\trole=single\\n$`),
    );
  });

  it('serves the API on a root-only unix socket', () => {
    expect(sh('stat', '-c', '%a %U', SOCK).trim()).toBe('600 root');
  });

  it('starts a unit, shows it, and adopts it across agent restarts (MainPID unchanged)', async () => {
    const start = ctl('start', `/root/single-test/hello-${id}.service`);
    expect(start.out).toMatch(new RegExp(`Unit hello-${id}\\.service launched on [0-9a-f]{8}\\.\\.\\./`));
    expect(start.rc).toBe(0);
    expect(sh('systemctl', 'is-active', `hello-${id}.service`).trim()).toBe('active');
    const lu = ctl('list-units', '--no-legend', '--fields=unit,active,sub');
    expect(lu.out).toContain(`hello-${id}.service\tactive\trunning`);
    const pid = mainPid(`hello-${id}.service`);
    sh('systemctl', 'restart', UNIT);
    await sleep(500);
    expect(sh('systemctl', 'is-active', UNIT).trim()).toBe('active');
    expect(mainPid(`hello-${id}.service`)).toBe(pid);
    sh('systemctl', 'kill', '-s', 'KILL', UNIT);
    await sleep(300);
    shRc('systemctl', 'reset-failed', UNIT);
    expect(mainPid(`hello-${id}.service`)).toBe(pid);
    // kill -9, then the same agent again on the same data dir: it resumes its lease and adopts.
    startAgent();
    expect(ctl('list-units', '--no-legend', '--fields=unit,active').out).toContain(
      `hello-${id}.service\tactive`,
    );
    expect(mainPid(`hello-${id}.service`)).toBe(pid);
  });

  it('over TCP requires a client certificate from the CA (mutual TLS)', async () => {
    const get = (withCert: boolean) =>
      new Promise<number>((resolve, reject) => {
        const req = request(
          {
            host: machineIp(M),
            port: PORT,
            path: '/fleet/v1/machines',
            ca: readFileSync(pki.ca),
            servername: 'localhost',
            ...(withCert ? { cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey) } : {}),
            checkServerIdentity: () => undefined,
          },
          (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          },
        );
        req.on('error', reject);
        req.end();
      });
    expect(await get(true)).toBe(200);
    await expect(get(false)).rejects.toThrow();
  });

  it('SIGHUP applies the proxy settings live and names the keys that need a restart', async () => {
    const journal = () => sh('journalctl', '-u', UNIT, '-o', 'cat', '--no-pager', '-n', '200');
    const listening = () => sh('ss', '-Hltn', `sport = :${PROXY_PORT}`).trim() !== '';
    const waitFor = async (what: string, ok: () => boolean) => {
      for (const t0 = Date.now(); Date.now() - t0 < 10_000; await sleep(100)) if (ok()) return;
      throw new Error(`timed out waiting for ${what}\n${journal()}`);
    };
    expect(listening()).toBe(false);
    put(CONF, `proxy_services=database=127.0.0.1:${PROXY_PORT}\nproxy_mode=userspace\nagent_ttl=45s\n`);
    sh('systemctl', 'kill', '--kill-whom=main', '-s', 'HUP', UNIT);
    await waitFor('the proxy listener', listening);
    const log = journal();
    expect(log).toContain('proxy settings reloaded');
    expect(log).toContain(
      `proxy: listening on 127.0.0.1:${PROXY_PORT} for service database (userspace data path: proxy mode userspace)`,
    );
    expect(log).toContain('configuration reloaded; agent_ttl take effect at the next restart');
    // No endpoint for "database" in this agent's registry: refused, with the log line.
    expect(shRc('curl', '-s', '--max-time', '2', `http://127.0.0.1:${PROXY_PORT}/`).rc).not.toBe(0);
    await waitFor('the refusal log line', () =>
      journal().includes('proxy: no endpoint for service database: connection refused'),
    );
    // Bad value: the reload is refused as a whole, naming the key; the proxy keeps running.
    put(CONF, `proxy_services=database=127.0.0.1:${PROXY_PORT}\nproxy_mode=fast\n`);
    sh('systemctl', 'kill', '--kill-whom=main', '-s', 'HUP', UNIT);
    await waitFor('the refused reload', () =>
      journal().includes('configuration reload failed; keeping the old one'),
    );
    expect(journal()).toMatch(/proxy_mode: \\?"fast\\?" is not one of auto, kernel, userspace/);
    expect(listening()).toBe(true);
    // Removed from the config: the listener goes.
    put(CONF, '# no proxy\n');
    sh('systemctl', 'kill', '--kill-whom=main', '-s', 'HUP', UNIT);
    await waitFor('the proxy listener to close', () => !listening());
    expect(sh('systemctl', 'is-active', UNIT).trim()).toBe('active');
  });

  it('stops and removes its units when stopped for good (not a restart)', () => {
    sh('systemctl', 'stop', UNIT);
    expect(shRc('systemctl', 'is-active', `hello-${id}.service`).out.trim()).not.toBe('active');
    expect(sh('ls', '/run/flotilla/single-test-units').trim()).toBe('');
  });
});
