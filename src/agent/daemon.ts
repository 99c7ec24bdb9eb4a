/**
 * `flotilla agent`: the daemon. Wires config → registry (etcd or embedded) → presence lease →
 * systemd → cluster view → machine agent + engine → API, and owns the process lifecycle:
 *
 *   READY=1 after listeners are up and the first reconcile finished; STOPPING=1 on shutdown.
 *   SIGTERM/SIGINT: graceful. Under `systemctl restart` (our unit has a restart job queued) the
 *     units keep running and the lease is kept, so the next agent adopts everything (fleet #1086).
 *     Otherwise (`systemctl stop`, or not under systemd) local units are stopped and the lease is
 *     revoked, so the machine leaves and its units move at once. A second signal forces exit.
 *   SIGHUP: re-read the config; metadata, verbosity and the proxy settings apply live; other changed
 *     keys are named in a log line (they need a restart).
 *   SIGUSR1: dump the agent's state as JSON to the log.
 *
 * The lease ID is kept in <data_dir>/agent.lease so a restarted agent (also after kill -9) resumes its
 * own lease while it is alive, instead of colliding with itself.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, renameSync, writeFileSync, openSync, fsyncSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Dashboard } from '../dashboard/server.js';
import { ApiServer, activationFds, advertisedAddress, parseListen } from '../api/server.js';
import { FleetV1 } from '../api/fleet-v1.js';
import { FlotillaV1 } from '../api/flotilla-v1.js';
import { clusterGauges } from '../api/gauges.js';
import { OwnMetadata } from '../api/machine-metadata.js';
import { UnitLogs } from '../api/unit-logs.js';
import { ServicesApi, ServicesHttpServer } from '../api/services.js';
import { ServiceRegistrar } from '../docker/discovery.js';
import { DockerContainerSource } from '../docker/discovery-docker.js';
import { ServiceProxy, type ProxyMode } from '../docker/proxy.js';
import { NftNetfilter, removeKernelRules, TABLE_PREFIX } from '../docker/proxy-kernel.js';
import { parseProxySpecs } from '../docker/services.js';
import { ServicesView } from '../docker/services-view.js';
import { Engine } from '../engine/engine.js';
import { isCode } from '../lib/errors.js';
import { createLogger } from '../lib/log.js';
import { initMetrics, instrumentStore, setGaugeSource } from '../lib/metrics.js';
import { LeaseKeeper } from '../registry/lease.js';
import { openStore } from '../registry/open.js';
import { Registry } from '../registry/registry.js';
import type { MachineRecord } from '../registry/types.js';
import { DbusSystemdManager } from '../systemd/dbus-manager.js';
import { ContainerUnits } from '../docker/containers.js';
import { DockerodeEngine } from '../docker/dockerode.js';
import { VERSION } from '../version.js';
import { MachineAgent } from './agent.js';
import { ClusterView } from './cluster-view.js';
import { KEYS, loadConfig, type AgentConfig, type LoadOptions } from './config.js';
import { detectPublicIp, localAddresses, readMachineId } from './identity.js';
import { FenceMonitor } from './fence.js';
import { LivenessMonitor, serveLiveness } from './liveness.js';
import { SdNotify } from './sdnotify.js';

/** The agent's proxy's nft table: one fixed name, so a changed proxy_services replaces it. */
const AGENT_TABLE = `${TABLE_PREFIX}agent`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function writeAtomic(path: string, data: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, data, { mode: 0o600 });
  const fd = openSync(tmp, 'r');
  fsyncSync(fd);
  closeSync(fd);
  renameSync(tmp, path);
}

/** Is our own systemd unit being restarted (a restart job queued for it)? */
/** Endpoints on this machine first, the rest in the order given. */
export function preferLocal(endpoints: string[], local: Set<string>): string[] {
  const isLocal = (e: string) => {
    try {
      const h = new URL(e).hostname;
      return local.has(h) || h === 'localhost' || h.startsWith('127.');
    } catch {
      return false;
    }
  };
  return [...endpoints.filter(isLocal), ...endpoints.filter((e) => !isLocal(e))];
}

async function restartPending(): Promise<boolean> {
  if (!process.env.INVOCATION_ID) return false;
  let unit: string | undefined;
  try {
    const cg = readFileSync('/proc/self/cgroup', 'utf8');
    unit = /\/([^/\n]+\.service)(?:\/[^\n]*)?$/m.exec(cg)?.[1];
  } catch {
    return false;
  }
  if (!unit) return false;
  try {
    const { stdout } = await promisify(execFile)(
      'systemctl',
      ['list-jobs', '--no-legend', '--full', '--plain'],
      {
        timeout: 3000,
      },
    );
    return stdout.split('\n').some((l) => {
      const [, u, type] = l.trim().split(/\s+/);
      return u === unit && type === 'restart';
    });
  } catch {
    return false;
  }
}

export async function runAgent(opts: LoadOptions): Promise<number> {
  const loaded = loadConfig(opts);
  const config = loaded.config;
  const log = createLogger({ verbosity: config.verbosity });
  log.info({ file: loaded.file ?? '(none)', version: VERSION }, `flotilla agent ${VERSION} starting`);
  for (const msg of loaded.ignored) log.warn({}, msg);

  const machineID = readMachineId(config.machineIdFile);
  const machine: MachineRecord = {
    id: machineID,
    publicIP: config.publicIp ?? detectPublicIp(),
    metadata: config.metadata,
    version: VERSION,
  };
  // Peers reach this agent's API here (mutual TLS) for status and journals of units it hosts.
  if (config.apiListen) machine.api = advertisedAddress(config.apiListen, machine.publicIP);
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  // Prefer this machine's own etcd member: a partitioned remote member then costs nothing.
  const local = new Set([machine.publicIP, ...localAddresses()]);
  config.etcdServers = preferLocal(config.etcdServers, local);
  const store = instrumentStore(await openStore(config));
  const registry = new Registry(store);
  log.info(
    { registry: store.backend, endpoints: config.etcdServers.length ? config.etcdServers : undefined },
    `registry: ${store.backend === 'etcd' ? `etcd ${config.etcdServers.join(',')}` : `embedded in ${config.dataDir}/registry`}`,
  );

  // Presence: resume our own lease if it is still alive, else grant a new one.
  const lease = new LeaseKeeper(store, Math.max(1, Math.round(config.agentTtl)));
  const leaseFile = join(config.dataDir, 'agent.lease');
  let resumed: string | undefined;
  try {
    const old = readFileSync(leaseFile, 'utf8').trim();
    if (old) {
      await store.keepAliveOnce(old);
      resumed = old;
    }
  } catch {
    /* none, or expired */
  }
  for (let attempt = 0; ; attempt++) {
    try {
      if (resumed) lease.adopt(resumed);
      else await lease.start();
      break;
    } catch (err) {
      if (attempt % 10 === 0) log.warn({ err: (err as Error).message }, 'registry unreachable; retrying');
      await sleep(Math.min(5000, 250 * 2 ** Math.min(attempt, 5)));
    }
  }
  // Liveness responder (clusters only): peers probe it to notice a dead machine before its lease
  // expires (see liveness.ts). Registered in the machine record only if it is really listening.
  let livenessServer: Awaited<ReturnType<typeof serveLiveness>> | undefined;
  if (store.backend === 'etcd' && config.livenessPort > 0) {
    try {
      livenessServer = await serveLiveness(machineID, machine.publicIP, config.livenessPort);
      machine.livenessPort = config.livenessPort;
    } catch (err) {
      log.warn(
        { port: config.livenessPort, err: (err as Error).message },
        'liveness responder not started: this machine fails over by its lease only',
      );
    }
  }
  // Configured metadata overlaid with the dynamic keys set through PATCH /fleet/v1/machines.
  const ownMetadata = new OwnMetadata(store, machineID, config.metadata);
  const register = async () => {
    const id = lease.id;
    if (id === undefined) return;
    writeAtomic(leaseFile, id);
    await registry.registerMachine(machine, id);
  };
  try {
    await ownMetadata.load().catch(() => undefined); // read again when the cluster view starts
    machine.metadata = ownMetadata.merged();
    await register();
  } catch (err) {
    if (isCode(err, 'E_CONFLICT')) {
      // Tell the other side too: it logs the collision.
      await store
        .put(`collision/${machineID}`, JSON.stringify({ publicIP: machine.publicIP, at: Date.now() }), {
          lease: lease.id!,
        })
        .catch(() => undefined);
      log.error({ machineID }, `${err.message}`);
      await lease.stop(true);
      await store.close();
      throw err;
    }
    throw err;
  }
  lease.on('granted', () => {
    log.warn({ lease: lease.id }, 'presence lease was lost; registered again with a new lease');
    void register()
      .then(() => agent.republish())
      .catch((e: Error) => log.error({ err: e.message }, 'could not register again'));
  });
  lease.on('error', (e) => log.warn({ err: e.message }, 'lease renewal failed'));

  const systemd = await DbusSystemdManager.connect({
    ...(config.dbusAddress ? { address: config.dbusAddress } : {}),
    unitsDir: config.unitsDirectory,
    logger: log,
  });
  const view = new ClusterView(registry);
  view.on('error', (e) => log.debug({ err: e.message }, 'registry watch interrupted'));
  view.on('collision', (id, ip) => {
    if (id === machineID) {
      log.error(
        { machineID, otherIP: ip },
        `another agent at ${ip} tried to join with this machine's ID ${machineID}; it was refused (duplicate /etc/machine-id)`,
      );
    }
  });
  const republishMetadata = () => {
    machine.metadata = ownMetadata.merged();
    void register().catch((e: Error) => log.error({ err: e.message }, 'could not update machine record'));
  };
  view.on('batch', (_rev, events) => {
    if (ownMetadata.apply(events)) republishMetadata();
  });
  view.on('resync', () => {
    void ownMetadata.load().then(
      (changed) => changed && republishMetadata(),
      () => undefined,
    );
  });
  view.on('available', (up) =>
    up ? log.info({}, 'registry reachable') : log.warn({}, 'registry unreachable: keeping units running'),
  );
  // Docker may be absent or come and go: container units then fail with a reason; the agent runs on.
  const docker = new DockerodeEngine({ socketPath: config.dockerSocket });
  const containers = new ContainerUnits({
    docker,
    machineID,
    dockerSocket: config.dockerSocket,
    specDir: config.containersDirectory,
    dataDir: config.dataDir,
    log,
    trigger: () => agent.trigger(),
    publish: (name) => void agent.publish(name).catch(() => undefined),
  });
  const agent = new MachineAgent({
    registry,
    view,
    systemd,
    lease,
    machine,
    unitsDir: config.unitsDirectory,
    log,
    resyncMs: Math.max(5000, config.engineReconcileInterval * 5000),
    containers,
  });
  const engine = config.disableEngine
    ? undefined
    : new Engine({
        registry,
        view,
        lease,
        machineID,
        log,
        intervalMs: config.engineReconcileInterval * 1000,
      });

  await view.start();
  await agent.start();
  containers.start();
  engine?.start();
  // With liveness probing, peers revoke a silent machine after livenessTimeout: a machine cut off
  // from everything must fence itself before that, not after agent_ttl.
  const livenessTimeoutMs = (config.livenessTimeout ?? (config.agentTtl * 2) / 3) * 1000;
  const livenessIntervalMs = Math.max(100, livenessTimeoutMs / 4);
  const fence = new FenceMonitor({
    ttlMs: machine.livenessPort
      ? Math.max(500, livenessTimeoutMs - livenessIntervalMs - 250)
      : config.agentTtl * 1000,
    lastRenewed: () => lease.lastRenewed,
    endpoints: config.etcdServers,
    ownAddresses: local,
    setFenced: (on) => agent.fence(on),
  });
  fence.start();
  const liveness =
    store.backend === 'etcd'
      ? new LivenessMonitor({
          machineID,
          machines: () => view.snap?.machines.values() ?? [],
          leader: () => view.snap?.leader?.machineID,
          isLeader: () => engine?.isLeader ?? false,
          lastRenewed: () => lease.lastRenewed,
          evict: (victim) => {
            const mine = lease.id;
            return mine === undefined
              ? Promise.resolve(false)
              : registry.evictMachine(victim, { id: machineID, lease: mine });
          },
          log,
          timeoutMs: livenessTimeoutMs,
          intervalMs: livenessIntervalMs,
          ttlMs: config.agentTtl * 1000,
        })
      : undefined;
  liveness?.start();

  // Service discovery: containers labelled flotilla.service=NAME:PORT are registered under
  // services/NAME on this machine's presence lease, driven by Docker events (same Docker port).
  const registrar = new ServiceRegistrar({
    registry,
    source: new DockerContainerSource(docker),
    lease,
    machineID,
    ip: machine.publicIP,
    log,
  });
  registrar.start();
  // A view of services/* for the API's watch stream and the agent's proxy.
  const servicesView = new ServicesView(registry);
  servicesView.on('error', (e) => log.debug({ err: e.message }, 'services watch interrupted'));
  await servicesView.start();
  const servicesApi = new ServicesApi(registry, servicesView);

  const fleet = new FleetV1(registry);
  const peerTls = config.apiListen
    ? { ca: config.apiCafile!, cert: config.apiCertfile!, key: config.apiKeyfile! }
    : undefined;
  const flotilla = new FlotillaV1({
    machineID,
    view,
    logs: new UnitLogs({ registry, machineID, peerTls }),
  });
  setGaugeSource(() => clusterGauges({ view, machineID, lease, engine }));
  // servicesApi first: the /flotilla/v1 router answers 404 for paths it does not know.
  const api = new ApiServer([
    (req) => fleet.route(req),
    (req) => servicesApi.route(req),
    (req) => flotilla.route(req),
  ]);
  const fds = activationFds();
  await api.listen({
    socketPath: config.socketPath,
    activationFds: fds,
    ...(config.apiListen && peerTls ? { tcp: { ...parseListen(config.apiListen), ...peerTls } } : {}),
  });
  log.info(
    { socket: fds.length ? `fds ${fds.join(',')}` : config.socketPath, tcp: config.apiListen },
    'API listening',
  );

  const dashboard = config.dashboardListen ? new Dashboard() : undefined;
  await dashboard
    ?.start({
      config,
      log,
      machineId: machineID,
      registry,
      store,
      systemd,
      signal: new AbortController().signal,
    })
    .catch((err: Error) => log.error({ err: err.message }, 'dashboard: cannot start; not running'));
  // Optional discovery listeners: one that cannot bind (port taken) is logged and left out; it must
  // not cost the machine its place in the cluster.
  let servicesHttp: ServicesHttpServer | undefined;
  if (config.servicesListen) {
    const s = new ServicesHttpServer(servicesApi);
    try {
      await s.listen(config.servicesListen);
      servicesHttp = s;
      log.info({ listen: config.servicesListen }, 'services (read-only HTTP) listening');
    } catch (err) {
      log.error(
        { listen: config.servicesListen, err: (err as Error).message },
        'services_listen: cannot listen',
      );
    }
  }
  // The service proxy: rebuilt on SIGHUP when its settings change.
  let proxy: ServiceProxy | undefined;
  const proxyKey = (c: AgentConfig) =>
    JSON.stringify([c.proxyServices ?? '', c.proxyMode, c.proxyDrainTimeout]);
  let proxySettings = proxyKey(config);
  let proxyChange: Promise<void> = Promise.resolve();
  // A previous run (restarted: its rules were left in force for this one) may have left the agent's
  // table; without the kernel path now, it must go, or it would keep sending to old endpoints.
  const clearAgentKernelRules = async () => {
    const nf = new NftNetfilter();
    if ((await nf.probe()) !== undefined) return;
    if ((await nf.tables(AGENT_TABLE)).includes(AGENT_TABLE)) {
      log.info({ table: AGENT_TABLE }, 'proxy: removing the kernel rules a previous run left');
      await removeKernelRules(nf, AGENT_TABLE, log);
    }
  };
  const startProxy = async (c: AgentConfig): Promise<ServiceProxy | undefined> => {
    if (!c.proxyServices) return undefined;
    const p = new ServiceProxy({
      listen: parseProxySpecs([c.proxyServices], 'proxy_services'),
      source: servicesView,
      log,
      drainTimeoutMs: c.proxyDrainTimeout * 1000,
      mode: c.proxyMode as ProxyMode,
      kernelTable: AGENT_TABLE,
    });
    try {
      await p.start();
      return p;
    } catch (err) {
      log.error({ err: (err as Error).message }, 'proxy_services: cannot start; the proxy is not running');
      return undefined;
    }
  };
  proxy = await startProxy(config);
  if (proxy?.mode !== 'kernel') await clearAgentKernelRules();

  await agent.firstReconcile;
  const notify = new SdNotify();
  await notify.ready(`machine ${machineID.slice(0, 8)} in cluster (${store.backend})`);
  let lastReconciles = -1;
  notify.startWatchdog(() => {
    const alive = agent.reconciles !== lastReconciles || view.available;
    lastReconciles = agent.reconciles;
    return alive;
  });
  log.info({ machineID, publicIP: machine.publicIP }, 'agent ready');
  // prom-client is loaded only now: off the start-up path a restart must finish within agent_ttl.
  void initMetrics({ processMetrics: true }).catch((e: Error) =>
    log.warn({ err: e.message }, 'metrics unavailable'),
  );

  return new Promise<number>((resolve) => {
    let stopping = false;
    const shutdown = async (signal: string) => {
      if (stopping) {
        log.warn({ signal }, 'second signal: exiting now');
        process.exit(1);
      }
      stopping = true;
      await notify.stopping();
      notify.stopWatchdog();
      const restart = await restartPending();
      log.info(
        { signal, restart },
        restart ? 'restarting: units keep running' : 'stopping: leaving the cluster',
      );
      const force = setTimeout(() => {
        log.error({}, 'shutdown took longer than 60 s; exiting');
        process.exit(1);
      }, 60_000);
      force.unref();
      try {
        fence.stop();
        liveness?.stop();
        livenessServer?.close();
        await proxyChange;
        // A restart leaves the kernel path's rules in place: this machine's connections keep
        // reaching the endpoints while the next agent starts (it replaces the same table).
        await proxy?.close({ keepKernelRules: restart });
        await servicesHttp?.close();
        await dashboard?.stop();
        await api.close();
        servicesView.stop();
        // Endpoints hang on the lease: a real stop revokes it (they go), a restart keeps them.
        await registrar.stop(false);
        await engine?.stop(!restart);
        await agent.shutdown(!restart);
        containers.close();
        docker.close();
        view.stop();
        // A restart gets the lease's whole TTL to come back in (the next process resumes it).
        if (restart) await lease.renew();
        await lease.stop(!restart);
        await systemd.close();
        await store.close();
      } catch (err) {
        log.error({ err: (err as Error).message }, 'error during shutdown');
      }
      clearTimeout(force);
      resolve(0);
    };
    process.on('SIGTERM', () => void shutdown('SIGTERM'));
    process.on('SIGINT', () => void shutdown('SIGINT'));
    process.on('SIGUSR1', () =>
      log.info(
        {
          state: {
            agent: agent.dump(),
            engine: engine?.stats,
            services: registrar.dump(),
            proxy: proxy?.stats(),
          },
        },
        'state dump',
      ),
    );
    process.on('SIGHUP', () => {
      try {
        const next = loadConfig(opts).config;
        ownMetadata.setBase(next.metadata);
        machine.metadata = ownMetadata.merged();
        log.level = next.verbosity > 0 ? 'debug' : 'info';
        void register().catch((e: Error) => log.error({ err: e.message }, 'could not update machine record'));
        if (proxyKey(next) !== proxySettings) {
          const wanted = proxyKey(next);
          proxyChange = proxyChange
            .then(async () => {
              if (stopping) return;
              // The new proxy replaces the agent's table in one transaction: kernel-path connections
              // and drains run on. Only the user-space connections are cut.
              await proxy?.close({ keepKernelRules: true });
              proxy = await startProxy(next);
              if (proxy?.mode !== 'kernel') await clearAgentKernelRules();
              if (next.proxyServices && !proxy) return; // startProxy logged why; a new SIGHUP retries
              proxySettings = wanted;
              log.info(
                { proxy_services: next.proxyServices ?? '', proxy_mode: next.proxyMode },
                'proxy settings reloaded',
              );
            })
            .catch((err: Error) => log.error({ err: err.message }, 'proxy reload failed'));
        }
        const later = restartOnlyChanges(config, next);
        if (later.length > 0) {
          log.warn(
            { keys: later },
            `configuration reloaded; ${later.join(', ')} take effect at the next restart`,
          );
        }
        log.info({ metadata: next.metadata }, 'configuration reloaded');
      } catch (err) {
        log.error({ err: (err as Error).message }, 'configuration reload failed; keeping the old one');
      }
    });
  });
}

/** Keys (config file names) whose value changed but that apply only at the next agent start. */
export function restartOnlyChanges(before: AgentConfig, after: AgentConfig): string[] {
  const live = new Set(['metadata', 'verbosity', 'proxy_services', 'proxy_mode', 'proxy_drain_timeout']);
  return Object.entries(KEYS)
    .filter(
      ([k, spec]) => !live.has(k) && JSON.stringify(before[spec.field]) !== JSON.stringify(after[spec.field]),
    )
    .map(([k]) => k);
}
