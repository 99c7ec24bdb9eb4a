/**
 * The seeds' service discovery scenario, end to end, on the 3 real machines (agent_ttl=3s), each
 * with its own Docker engine:
 *
 *   1. a "database" container unit (busybox httpd on the host network, `Service=database:5432`)
 *      registers under services/database: `list-services`, the agent API over its unix socket, the
 *      read-only listener's `/v2/keys/database` (plain curl), and `etcdctl get --prefix` all show it;
 *   2. a client on another machine reaches it through the proxy the agent runs there
 *      (`proxy_services=database=127.0.0.1:15432`), on the proxy's kernel path (nftables DNAT;
 *      the user-space path is covered by discovery-proxy.test.ts);
 *   3. the machine that hosts it is power-cut; the unit and its container come back on another
 *      machine, the proxy reroutes, and the client's next connection succeeds. The time from the
 *      power cut to the first successful connection is measured inside the client machine (the
 *      machines share the host's clock) and printed.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  AGENT_TTL_MS,
  allMachines,
  ctl,
  ctlOk,
  inMachine,
  inMachineOk,
  putFile,
  uniq,
  useCluster,
  waitFor,
  waitForMembers,
  writeUnit,
} from '../support/cluster.js';
import { describeSystemd, machineIp, powerCut, testenv } from '../support/testbed.js';

const CONF = '/etc/flotilla/flotilla.conf';
const PROXY_PORT = 15432;

interface Endpoint {
  service: string;
  machineID: string;
  ip: string;
  port: number;
  container: string;
  unit?: string;
  health: string;
  address: string;
}

describeSystemd('service discovery: the seeds scenario on real machines', () => {
  const cluster = useCluster();
  const dockerIn = (testenv.TESTENV_MACHINE_DOCKER ?? '').split(',').filter(Boolean);

  beforeAll(async () => {
    expect(dockerIn, 'a Docker engine in every machine (test/env/docker.sh up --machines)').toEqual(
      expect.arrayContaining([...allMachines]),
    );
    // Every agent serves the read-only services listener and runs a proxy for "database".
    for (const m of allMachines) {
      await putFile(
        m,
        CONF,
        'services_listen=127.0.0.1:4001\nproxy_services=database=127.0.0.1:15432\nproxy_drain_timeout=5s\n',
      );
      await inMachineOk(m, 'systemctl', 'restart', 'flotilla');
    }
    await waitForMembers(allMachines[0]!, cluster.map(), allMachines);
  }, 120_000);

  afterAll(async () => {
    for (const m of allMachines) {
      await inMachine(m, 'rm', '-f', CONF);
      await inMachine(m, 'systemctl', 'restart', 'flotilla');
    }
    // The restart left each proxy's rules in force for the next agent; that agent runs no proxy, so
    // it removed them.
    for (const m of allMachines) {
      expect(await inMachineOk(m, 'nft', 'list', 'tables')).not.toContain('flotilla_proxy');
    }
  }, 120_000);

  async function services(from: string): Promise<Endpoint[]> {
    const out = await ctlOk(from, 'list-services', 'database', '-o', 'json');
    return (JSON.parse(out) as { services: { endpoints: Endpoint[] }[] }).services.flatMap(
      (s) => s.endpoints,
    );
  }

  /** One HTTP GET through the client machine's proxy: the body (the serving machine's hostname), or ''. */
  async function viaProxy(client: string): Promise<string> {
    const r = await inMachine(client, 'curl', '-s', '--max-time', '2', `http://127.0.0.1:${PROXY_PORT}/`);
    return r.code === 0 ? r.stdout.trim() : '';
  }

  it('registers the database, serves it through the proxy, and reroutes after a power cut', async () => {
    const unit = `${uniq('database')}.service`;
    const body = [
      '[Unit]',
      'Description=seeds database (busybox httpd)',
      '',
      '[Container]',
      'Image=busybox:latest',
      'Network=host',
      'Exec=sh -c "mkdir -p /tmp/www && hostname > /tmp/www/index.html && exec httpd -f -p 5432 -h /tmp/www"',
      'Service=database:5432',
      '',
    ].join('\n');
    const from = allMachines[0]!;
    const path = await writeUnit(from, unit, body);
    cluster.created.push(unit);
    const start = await ctl(from, 'start', path);
    expect(start.code, start.stderr + start.stdout).toBe(0);

    // 1. Registered under services/database, at the hosting machine's IP.
    const [ep] = await waitFor(
      'database registered',
      async () => {
        const l = await services(from);
        return l.length === 1 ? l : undefined;
      },
      60_000,
    );
    const host = cluster.map().name(ep!.machineID);
    expect(ep).toMatchObject({ service: 'database', ip: machineIp(host), port: 5432, unit, health: 'none' });
    const others = allMachines.filter((m) => m !== host);
    const client = others[0]!;

    // Read access for anything: the agent API over its socket, /v2/keys over plain HTTP, etcdctl.
    const api = JSON.parse(
      await inMachineOk(
        client,
        'curl',
        '-s',
        '--unix-socket',
        '/var/run/fleet.sock',
        'http://localhost/flotilla/v1/services/database',
      ),
    ) as { endpoints: Endpoint[] };
    expect(api.endpoints.map((e) => e.address)).toEqual([`${machineIp(host)}:5432`]);
    const v2 = JSON.parse(
      await inMachineOk(client, 'curl', '-s', 'http://127.0.0.1:4001/v2/keys/database'),
    ) as {
      node: { key: string; nodes: { key: string; value: string }[] };
    };
    expect(v2.node.key).toBe('/database');
    expect(v2.node.nodes.map((n) => n.value)).toEqual([`${machineIp(host)}:5432`]);
    const etcd = await inMachineOk(
      client,
      'env',
      'ETCDCTL_API=3',
      'etcdctl',
      '--endpoints=http://127.0.0.1:2379',
      'get',
      '--prefix',
      '/flotilla/services/database/',
    );
    expect(etcd).toContain(`/flotilla/services/database/${ep!.machineID}:5432`);
    expect(etcd).toContain(`"ip":"${machineIp(host)}"`);

    // 2. A client on another machine reaches it through the proxy.
    const served = await waitFor(
      'served through the proxy',
      async () => (await viaProxy(client)) || undefined,
      20_000,
    );
    expect(served).toBe(host);
    // ... on the kernel path: the client machine's agent chose it at start (nft is installed in the
    // machines; route_localnet is set by the test bed, as /proc/sys is read-only in nspawn), and its
    // table DNATs the loopback listener to the database's machine.
    const agentLog = (
      await inMachineOk(client, 'journalctl', '-u', 'flotilla', '-o', 'cat', '--no-pager', '-n', '400')
    ).split('\n');
    const lastStart = agentLog.findLastIndex((l) =>
      l.includes(`listening on 127.0.0.1:${PROXY_PORT} for service database`),
    );
    expect(agentLog[lastStart]).toContain('(kernel data path)');
    expect(agentLog.slice(lastStart).filter((l) => l.includes('cannot apply the kernel rules'))).toEqual([]);
    const rules = await inMachineOk(client, 'nft', 'list', 'ruleset');
    expect(rules).toContain('table ip flotilla_proxy_agent {');
    expect(rules).toMatch(new RegExp(`ip daddr 127\\.0\\.0\\.1 tcp dport ${PROXY_PORT} goto svc_0`));
    // the DNAT rule's counter shows the request went through the kernel path, not the listener
    expect(rules).toMatch(
      new RegExp(
        `counter packets [1-9]\\d* bytes \\d+ dnat ip to numgen inc mod 1 map \\{ 0 : ${machineIp(host).replace(/\./g, '\\.')} \\. 5432 \\}`,
      ),
    );

    // 3. Power cut. A loop inside the client machine connects every 50 ms and prints the time
    //    (ns, CLOCK_REALTIME: one clock for host and machines) of the first answer from elsewhere.
    const loop = inMachine(
      client,
      'sh',
      '-c',
      'end=$(( $(date +%s) + 90 )); while [ "$(date +%s)" -lt "$end" ]; do ' +
        'r=$(curl -s --max-time 1 "http://127.0.0.1:$1/") && [ -n "$r" ] && [ "$r" != "$2" ] && { echo "$(date +%s%N) $r"; exit 0; }; ' +
        'sleep 0.05; done; exit 1',
      'sh',
      String(PROXY_PORT),
      host,
    );
    await new Promise((r) => setTimeout(r, 300)); // the loop is running (and still served by the old host)
    const cutNs = BigInt(Date.now()) * 1_000_000n;
    powerCut(host);
    const res = await loop;
    expect(res.code, `no connection succeeded after the power cut: ${res.stderr}`).toBe(0);
    const [okNs, newHost] = res.stdout.trim().split(' ') as [string, string];
    const ms = Number(BigInt(okNs) - cutNs) / 1e6;
    expect(others).toContain(newHost);

    // The registry agrees: one endpoint, on the new machine; the dead machine's is gone with its lease.
    const [after] = await waitFor(
      'endpoint moved',
      async () => {
        const l = await services(client);
        return l.length === 1 && l[0]!.ip === machineIp(newHost) ? l : undefined;
      },
      15_000,
    );
    expect(after).toMatchObject({ port: 5432, unit, machineID: cluster.map().id(newHost) });
    console.log(
      `[seeds] power cut of ${host} → first successful connection through the proxy in ${client}: ` +
        `${ms.toFixed(0)} ms (served by ${newHost}; agent_ttl ${AGENT_TTL_MS} ms)`,
    );

    // 4. Restarting the client machine's agent does not interrupt the proxy: the kernel path's rules
    //    stay in force while the next agent starts (it replaces the same table). A loop of requests
    //    runs across the restart and counts failures.
    const during = inMachine(
      client,
      'sh',
      '-c',
      'ok=0; bad=0; end=$(( $(date +%s) + 6 )); while [ "$(date +%s)" -lt "$end" ]; do ' +
        'if r=$(curl -s --max-time 1 "http://127.0.0.1:$1/") && [ "$r" = "$2" ]; then ok=$((ok+1)); else bad=$((bad+1)); fi; ' +
        'sleep 0.02; done; echo "$ok $bad"',
      'sh',
      String(PROXY_PORT),
      newHost,
    );
    await new Promise((r) => setTimeout(r, 500));
    await inMachineOk(client, 'systemctl', 'restart', 'flotilla');
    const [okN, badN] = (await during).stdout.trim().split(' ').map(Number) as [number, number];
    console.log(
      `[seeds] agent restart in ${client}: ${okN} requests through the proxy served, ${badN} failed`,
    );
    expect(okN).toBeGreaterThan(20);
    expect(badN).toBe(0);
  }, 180_000);
});
