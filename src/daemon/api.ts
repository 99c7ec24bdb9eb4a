/**
 * The agent's HTTP surfaces, wired: the fleet v1 API and flotilla's own routes on the unix socket
 * (or socket-activated fds) and optional mutual-TLS TCP listener, and the optional read-only
 * services listener. A services listener that cannot bind is logged and left out: it must not cost
 * the machine its place in the cluster.
 */
import { FleetV1 } from '../api/fleet-v1.js';
import { FlotillaV1 } from '../api/flotilla-v1.js';
import { ApiServer, activationFds, parseListen } from '../api/server.js';
import { ServicesApi, ServicesHttpServer } from '../api/services.js';
import { UnitLogs } from '../api/unit-logs.js';
import { TerminalHost } from '../dashboard/terminal.js';
import type { ServicesView } from '../discovery/services-view.js';
import type { Logger } from '../lib/log.js';
import type { ClusterView } from '../registry/cluster-view.js';
import type { Registry } from '../registry/registry.js';
import type { AgentConfig } from './config.js';

export interface ApiDeps {
  config: AgentConfig;
  registry: Registry;
  view: ClusterView;
  servicesView: ServicesView;
  machineID: string;
  log: Logger;
  /** The subsystems' status, for GET /flotilla/v1/status (set once they exist). */
  status?: () => Record<string, unknown>;
}

export interface StartedApi {
  /** SIGHUP: the mutual-TLS listener reads api_cafile/api_certfile/api_keyfile again (logged). */
  reloadTls(): void;
  /** The mutual-TLS listener's port (port 0 resolved), when there is one. */
  tcpPort(): number | undefined;
  close(): Promise<void>;
}

export async function startApi(d: ApiDeps): Promise<StartedApi> {
  const { config, registry, log } = d;
  const servicesApi = new ServicesApi(registry, d.servicesView);
  const fleet = new FleetV1(registry);
  const peerTls = config.apiListen
    ? { ca: config.apiCafile!, cert: config.apiCertfile!, key: config.apiKeyfile! }
    : undefined;
  const flotilla = new FlotillaV1({
    machineID: d.machineID,
    view: d.view,
    machines: () => fleet.machines(),
    status: () => d.status?.() ?? {},
    logs: new UnitLogs({ registry, machineID: d.machineID, peerTls }),
  });
  // The dashboard's terminal (WebSocket upgrades): answers "off" unless dashboard_terminal.
  const terminal = new TerminalHost({
    machineID: d.machineID,
    enabled: config.dashboardTerminal,
    registry,
    peerTls,
    log,
  });
  // servicesApi first: the /flotilla/v1 router answers 404 for paths it does not know.
  const api = new ApiServer(
    [(req) => fleet.route(req), (req) => servicesApi.route(req), (req) => flotilla.route(req)],
    (req, sock, head, roles, tcp) => terminal.upgrade(req, sock, head, roles, tcp),
  );
  const fds = activationFds();
  await api.listen({
    socketPath: config.socketPath,
    activationFds: fds,
    limits: { log },
    ...(config.apiListen && peerTls ? { tcp: { ...parseListen(config.apiListen), ...peerTls } } : {}),
  });
  log.info(
    { socket: fds.length ? `fds ${fds.join(',')}` : config.socketPath, tcp: config.apiListen },
    'API listening',
  );

  let servicesHttp: ServicesHttpServer | undefined;
  if (config.servicesListen) {
    const s = new ServicesHttpServer(servicesApi, { log, name: 'services_listen' });
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
  return {
    reloadTls: () => {
      try {
        if (api.reloadTls())
          log.info(
            { cafile: config.apiCafile, certfile: config.apiCertfile, keyfile: config.apiKeyfile },
            'API TLS certificates reloaded; new connections use them',
          );
      } catch (err) {
        log.error({ err: (err as Error).message }, 'API TLS reload failed; keeping the old certificates');
      }
    },
    tcpPort: () => (config.apiListen ? api.tcpPort() : undefined),
    close: async () => {
      await servicesHttp?.close();
      await api.close();
    },
  };
}
