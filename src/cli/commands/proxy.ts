/**
 * `flotilla proxy NAME=HOST:PORT…`: run the service proxy in the foreground. Each NAME gets a TCP
 * listener on HOST:PORT that balances connections across the service's live endpoints, following
 * the agent's API (`--endpoint`, default the local socket) as the registry changes. Runs until
 * SIGTERM/SIGINT. The agent can run the same proxy itself (config `proxy_services`).
 */
import { createLogger } from '../../lib/log.js';
import { FlotillaError } from '../../lib/errors.js';
import { parseDuration } from '../../daemon/config.js';
import type { Command } from '../command.js';
import { DEFAULT_API_ENDPOINT } from '../../lib/paths.js';

function seconds(flag: string, v: unknown): number {
  const s = parseDuration(String(v));
  if (s === undefined || s <= 0)
    throw new FlotillaError(
      'E_USAGE',
      `--${flag}: ${JSON.stringify(v)} is not a positive duration (e.g. 30s, 2.5)`,
    );
  return s;
}

export const proxyCmd: Command = {
  name: 'proxy',
  summary: 'Proxy TCP connections to the live endpoints of services',
  usage:
    'proxy NAME=HOST:PORT... [--service=NAME=HOST:PORT,...] [--mode=auto|kernel|userspace] [--drain-timeout=30s] [--connect-timeout=2s] [--max-connections=4096] [--idle-timeout=1h]',
  flags: {
    service: {
      type: 'string',
      value: 'NAME=HOST:PORT,...',
      help: 'Listeners (also accepted as arguments): service NAME on HOST:PORT',
    },
    'drain-timeout': {
      type: 'string',
      default: '30s',
      value: 'DURATION',
      help: 'How long connections to a removed endpoint may keep running',
    },
    'connect-timeout': {
      type: 'string',
      default: '2s',
      value: 'DURATION',
      help: 'Time allowed to connect to one endpoint before trying the next',
    },
    'max-connections': {
      type: 'string',
      default: '4096',
      value: 'N',
      help: 'Client connections each listener holds at once (1 to 30000); one more is reset',
    },
    'idle-timeout': {
      type: 'string',
      default: '1h',
      value: 'DURATION',
      help: 'Close a connection on which no byte moved either way for this long (1s to 24h)',
    },
    mode: {
      type: 'string',
      default: 'auto',
      value: 'auto|kernel|userspace',
      help: "Data path for this machine's own connections: kernel (nftables DNAT, needs root and nft), userspace, or auto (kernel when possible)",
    },
    verbose: { type: 'boolean', default: false, help: 'Log debug lines' },
  },
  async run(ctx) {
    const { parseProxySpecs } = await import('../../discovery/services.js');
    const items = [...ctx.args, ...(typeof ctx.flags.service === 'string' ? [ctx.flags.service] : [])];
    let specs;
    try {
      specs = parseProxySpecs(items, 'proxy');
    } catch (err) {
      throw new FlotillaError('E_USAGE', (err as Error).message);
    }
    if (specs.length === 0) throw new FlotillaError('E_USAGE', 'proxy needs at least one NAME=HOST:PORT');
    const mode = String(ctx.flags.mode ?? 'auto');
    if (!['auto', 'kernel', 'userspace'].includes(mode))
      throw new FlotillaError(
        'E_USAGE',
        `--mode: ${JSON.stringify(mode)} is not one of auto, kernel, userspace`,
      );
    const drainTimeoutMs = seconds('drain-timeout', ctx.flags['drain-timeout']) * 1000;
    const connectTimeoutMs = seconds('connect-timeout', ctx.flags['connect-timeout']) * 1000;
    const idle = seconds('idle-timeout', ctx.flags['idle-timeout']);
    if (idle < 1 || idle > 86400)
      throw new FlotillaError(
        'E_USAGE',
        `--idle-timeout: ${JSON.stringify(ctx.flags['idle-timeout'])} is out of range (allowed: 1s to 24h)`,
      );
    const maxText = String(ctx.flags['max-connections']);
    const maxConnections = /^\d{1,5}$/.test(maxText) ? Number(maxText) : NaN;
    if (!(maxConnections >= 1 && maxConnections <= 30000))
      throw new FlotillaError(
        'E_USAGE',
        `--max-connections: ${JSON.stringify(maxText)} is not a number from 1 to 30000`,
      );
    const { RemoteServices } = await import('../../discovery/services-remote.js');
    const { ServiceProxy } = await import('../../proxy/proxy.js');
    const log = createLogger({ verbosity: ctx.flags.verbose === true ? 1 : 0 });
    const g = ctx.globals;
    const source = new RemoteServices({
      endpoint: String(g.endpoint ?? DEFAULT_API_ENDPOINT),
      ...(typeof g['ca-file'] === 'string' ? { caFile: g['ca-file'] } : {}),
      ...(typeof g['cert-file'] === 'string' ? { certFile: g['cert-file'] } : {}),
      ...(typeof g['key-file'] === 'string' ? { keyFile: g['key-file'] } : {}),
      log,
    });
    source.on('error', (e) => log.debug({ err: e.message }, 'services watch error'));
    try {
      await source.start();
    } catch (err) {
      throw new FlotillaError(
        'E_REGISTRY_UNAVAILABLE',
        `cannot follow the services of the agent at ${String(g.endpoint)}: ${(err as Error).message}`,
      );
    }
    const proxy = new ServiceProxy({
      listen: specs,
      source,
      log,
      drainTimeoutMs,
      connectTimeoutMs,
      maxConnections,
      idleTimeoutMs: idle * 1000,
      mode: mode as 'auto' | 'kernel' | 'userspace',
    });
    try {
      await proxy.start();
    } catch (err) {
      source.stop();
      throw new FlotillaError('E_CONFIG', `proxy: cannot start: ${(err as Error).message}`);
    }
    return new Promise<number>((resolve) => {
      let stopping = false;
      const stop = (signal: string) => {
        if (stopping) process.exit(1);
        stopping = true;
        log.info({ signal }, 'proxy stopping');
        source.stop();
        void proxy.close().then(() => resolve(0));
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
  },
};
