/**
 * `flotilla agent`: the daemon. Only wiring, in start order: config → registry (etcd or embedded)
 * → presence (presence.ts) → systemd → cluster view → machine agent + engine + container units →
 * guards (fencing, liveness) → service discovery → API (api.ts) → subsystems (host.ts; the proxy
 * first, proxy-lifecycle.ts) → READY=1. Signals and the shutdown sequence are lifecycle.ts's;
 * the timings come from timing.ts.
 *
 * SIGHUP re-reads the config: metadata and verbosity apply here, each subsystem applies its own
 * keys (the proxy: PROXY_KEYS in proxy-lifecycle.ts); other changed keys are named
 * in a log line (they need a restart).
 */
import { mkdirSync } from 'node:fs';
import { getHeapSpaceStatistics } from 'node:v8';
import { clusterGauges } from '../api/gauges.js';
import { OwnMetadata } from '../api/machine-metadata.js';
import { MachineAgent } from '../agent/agent.js';
import { ContainerUnits } from '../container/units.js';
import { DockerContainerSource } from '../discovery/docker-source.js';
import { ServiceRegistrar } from '../discovery/registrar.js';
import { ServicesView } from '../discovery/services-view.js';
import { DockerodeEngine } from '../docker/dockerode.js';
import { Engine } from '../engine/engine.js';
import { createLogger } from '../lib/log.js';
import { initMetrics, setGaugeSource } from '../lib/metrics.js';
import { ClusterView } from '../registry/cluster-view.js';
import { DbusSystemdManager } from '../systemd/dbus-manager.js';
import { VERSION } from '../version.js';
import { startApi } from './api.js';
import { loadConfig, type AgentConfig, type LoadOptions } from './config.js';
import { SubsystemHost } from './host.js';
import { RebootManager } from '../locksmith/manager.js';
import { MarkGood } from './mark-good.js';
import { localAddresses, machineRecord } from './identity.js';
import { Lifecycle, restartOnlyChanges } from './lifecycle.js';
import { openRegistry } from './open-store.js';
import { Presence, startGuards } from './presence.js';
import { ProxySubsystem } from './proxy-lifecycle.js';

export async function runAgent(opts: LoadOptions): Promise<number> {
  const loaded = loadConfig(opts);
  const config = loaded.config;
  const log = createLogger({ verbosity: config.verbosity });
  log.info({ file: loaded.file ?? '(none)', version: VERSION }, `flotilla agent ${VERSION} starting`);
  for (const msg of loaded.ignored) log.warn({}, msg);

  const machine = machineRecord(config);
  const machineID = machine.id;
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const local = new Set([machine.publicIP, ...localAddresses()]);
  const { store, registry, endpoints } = await openRegistry(config, local, log);
  // Configured metadata overlaid with the dynamic keys set through PATCH /fleet/v1/machines.
  const ownMetadata = new OwnMetadata(store, machineID, config.metadata);
  const { dataDir, livenessPort } = config;
  const presence = new Presence({
    store,
    registry,
    machine,
    dataDir,
    timingConfig: config,
    livenessPort,
    ownMetadata,
    log,
  });
  await presence.acquire();
  const lease = presence.lease;
  const timing = presence.timing;
  await presence.join();

  const systemd = await DbusSystemdManager.connect({
    ...(config.dbusAddress ? { address: config.dbusAddress } : {}),
    unitsDir: config.unitsDirectory,
    logger: log,
  });
  const view = new ClusterView(registry);
  view.on('error', (e) => log.debug({ err: e.message }, 'registry watch interrupted'));
  presence.follow(view);
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
  const unitsDir = config.unitsDirectory;
  const agent = new MachineAgent({
    registry,
    view,
    systemd,
    lease,
    machine,
    unitsDir,
    log,
    resyncMs: timing.resyncMs,
    hooks: containers,
  });
  presence.onReregistered = () => agent.republish();
  const engine = config.disableEngine
    ? undefined
    : new Engine({ registry, view, lease, machineID, log, intervalMs: timing.engineIntervalMs });

  await view.start();
  await agent.start();
  containers.start();
  engine?.start();
  const guards = startGuards({
    presence,
    registry,
    machine,
    endpoints,
    ownAddresses: local,
    setFenced: (on) => agent.fence(on),
    log,
    ...(store.backend === 'etcd'
      ? {
          liveness: {
            machines: () => view.snap?.machines.values() ?? [],
            leader: () => view.snap?.leader?.machineID,
            isLeader: () => engine?.isLeader ?? false,
          },
        }
      : {}),
  });

  // Service discovery: containers labelled flotilla.service=NAME:PORT are registered under
  // services/NAME on this machine's presence lease, driven by Docker events (same Docker port).
  const source = new DockerContainerSource(docker);
  const registrar = new ServiceRegistrar({ registry, source, lease, machineID, ip: machine.publicIP, log });
  registrar.start();
  // A view of services/* for the API's watch stream and the agent's proxy.
  const servicesView = new ServicesView(registry);
  servicesView.on('error', (e) => log.debug({ err: e.message }, 'services watch interrupted'));
  await servicesView.start();
  setGaugeSource(() => clusterGauges({ view, machineID, lease, engine }));
  const statusRef: { fn?: () => Record<string, unknown> } = {};
  const api = await startApi({
    config,
    registry,
    view,
    servicesView,
    machineID,
    log,
    status: () => statusRef.fn?.() ?? {},
  });

  // Parts started only once the agent is ready: reboot coordination (src/locksmith/) reads "ready"
  // as "back and healthy" after a reboot. It reads its own config (update.conf), not the agent's.
  // Mark-good (src/daemon/mark-good.ts) marks a trial boot's slot good once the agent has been
  // healthy (registry view available) for UPDATE_HEALTHY_SECONDS.
  const afterReady = new SubsystemHost<undefined>(
    [new RebootManager(), new MarkGood({ healthy: () => view.available })],
    log,
  );
  const proxy = new ProxySubsystem(servicesView);
  // The dashboard (src/dashboard/) calls the API socket, so it starts after it and stops before it.
  // Its code (and node-pty's, for the terminal) is loaded only when dashboard_listen is set.
  const dashboard = config.dashboardListen ? [new (await import('../dashboard/server.js')).Dashboard()] : [];
  const subsystems = new SubsystemHost<AgentConfig>([proxy, ...dashboard], log);
  statusRef.fn = () => ({ ...subsystems.status(), ...afterReady.status() });
  const abort = new AbortController();
  await subsystems.start({
    config,
    log,
    machineId: machineID,
    registry,
    store,
    systemd,
    signal: abort.signal,
  });

  const life = new Lifecycle({
    log,
    systemd,
    shutdown: async (restart) => {
      abort.abort();
      await afterReady.stop(restart ? 'restart' : 'leave');
      guards.stop();
      presence.closeResponder();
      await subsystems.stop(restart ? 'restart' : 'leave');
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
    },
    reload: () => {
      try {
        const next = loadConfig(opts).config;
        ownMetadata.setBase(next.metadata);
        log.level = next.verbosity > 0 ? 'debug' : 'info';
        presence.republishMetadata();
        // Rotated certificates: same paths (a changed path is restart-only), new contents.
        api.reloadTls();
        if (!life.isStopping) {
          void subsystems.reload(next);
          // Reboot coordination and mark-good read update.conf themselves: SIGHUP re-reads it too.
          void afterReady.reload(undefined).then(({ needRestart }) => {
            if (needRestart.length > 0)
              log.warn(
                { keys: needRestart },
                `update.conf reloaded; ${needRestart.join(', ')} take effect at the next restart`,
              );
          });
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
    },
    dump: () => ({
      memory: memoryFigures(),
      agent: agent.dump(),
      engine: engine?.stats,
      services: registrar.dump(),
      proxy: proxy.stats(),
      subsystems: { ...subsystems.status(), ...afterReady.status() },
    }),
  });

  await agent.firstReconcile;
  let lastReconciles = -1;
  await life.ready(`machine ${machineID.slice(0, 8)} in cluster (${store.backend})`, () => {
    const alive = agent.reconciles !== lastReconciles || view.available;
    lastReconciles = agent.reconciles;
    return alive;
  });
  log.info({ machineID, publicIP: machine.publicIP }, 'agent ready');
  await afterReady.start({
    config: undefined,
    log,
    machineId: machineID,
    registry,
    store,
    systemd,
    signal: abort.signal,
  });
  // prom-client is loaded only now: off the start-up path a restart must finish within agent_ttl.
  void initMetrics({ processMetrics: true }).catch((e: Error) =>
    log.warn({ err: e.message }, 'metrics unavailable'),
  );
  return life.run();
}

/** The process's memory in MiB (RSS, V8 heap committed/used, per heap space), for the SIGUSR1 dump. */
function memoryFigures(): Record<string, number> {
  const mib = (n: number) => Math.round((n / 1048576) * 10) / 10;
  const m = process.memoryUsage();
  const out: Record<string, number> = {
    rss: mib(m.rss),
    heapTotal: mib(m.heapTotal),
    heapUsed: mib(m.heapUsed),
    external: mib(m.external),
  };
  for (const s of getHeapSpaceStatistics()) out[`${s.space_name}Committed`] = mib(s.physical_space_size);
  return out;
}
