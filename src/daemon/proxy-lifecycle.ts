/**
 * The agent's service proxy as a Subsystem (subsystem.ts): started from `proxy_services`,
 * rebuilt on reload when one of PROXY_KEYS (`proxy_services`, `proxy_mode`, `proxy_drain_timeout`,
 * `proxy_max_connections`, `proxy_idle_timeout`) changes, and closed
 * at shutdown (a restart leaves the kernel path's rules in force for the next agent).
 *
 * A proxy that cannot start (a port taken) is logged and left out: it must not cost the machine its
 * place in the cluster; the next reload tries again.
 */
import type { Logger } from '../lib/log.js';
import { parseProxySpecs } from '../discovery/services.js';
import type { EndpointSource } from '../discovery/services-view.js';
import { TABLE_PREFIX } from '../proxy/kernel.js';
import type { ListenerStats, ProxyMode, ServiceProxy } from '../proxy/proxy.js';
import type { AgentConfig } from './config.js';
import type { ReloadOutcome, StopMode, Subsystem, SubsystemContext, SubsystemStatus } from './subsystem.js';

/** The agent's proxy's nft table: one fixed name, so a changed proxy_services replaces it. */
export const AGENT_TABLE = `${TABLE_PREFIX}agent`;

/** The config keys this subsystem applies live. */
export const PROXY_KEYS = [
  'proxy_services',
  'proxy_mode',
  'proxy_drain_timeout',
  'proxy_max_connections',
  'proxy_idle_timeout',
] as const;

type ProxyConfig = Pick<
  AgentConfig,
  'proxyServices' | 'proxyMode' | 'proxyDrainTimeout' | 'proxyMaxConnections' | 'proxyIdleTimeout'
>;

const settingsKey = (c: ProxyConfig) =>
  JSON.stringify([
    c.proxyServices ?? '',
    c.proxyMode,
    c.proxyDrainTimeout,
    c.proxyMaxConnections,
    c.proxyIdleTimeout,
  ]);

export class ProxySubsystem implements Subsystem<AgentConfig> {
  readonly name = 'proxy';
  private proxy: ServiceProxy | undefined;
  private settings = '';
  private configured = false;
  private change: Promise<void> = Promise.resolve();
  private stopped = false;
  private log!: Logger;

  constructor(private readonly source: EndpointSource) {}

  async start(ctx: SubsystemContext<AgentConfig>): Promise<void> {
    this.log = ctx.log;
    this.settings = settingsKey(ctx.config);
    this.configured = Boolean(ctx.config.proxyServices);
    this.proxy = await this.open(ctx.config);
    if (this.proxy?.mode !== 'kernel') await this.clearAgentKernelRules();
  }

  reload(next: AgentConfig): Promise<ReloadOutcome> {
    const wanted = settingsKey(next);
    if (wanted === this.settings) return Promise.resolve({ applied: [], needRestart: [] });
    this.change = this.change
      .then(async () => {
        if (this.stopped) return;
        // The new proxy replaces the agent's table in one transaction: kernel-path connections
        // and drains run on. Only the user-space connections are cut.
        await this.proxy?.close({ keepKernelRules: true });
        this.proxy = await this.open(next);
        this.configured = Boolean(next.proxyServices);
        if (this.proxy?.mode !== 'kernel') await this.clearAgentKernelRules();
        if (next.proxyServices && !this.proxy) return; // open() logged why; a new reload retries
        this.settings = wanted;
        this.log.info(
          { proxy_services: next.proxyServices ?? '', proxy_mode: next.proxyMode },
          'proxy settings reloaded',
        );
      })
      .catch((err: Error) => this.log.error({ err: err.message }, 'proxy reload failed'));
    return this.change.then(() => ({ applied: [...PROXY_KEYS], needRestart: [] }));
  }

  async stop(mode: StopMode): Promise<void> {
    this.stopped = true;
    await this.change;
    // A restart leaves the kernel path's rules in place: this machine's connections keep
    // reaching the endpoints while the next agent starts (it replaces the same table).
    await this.proxy?.close({ keepKernelRules: mode === 'restart' });
    this.proxy = undefined;
  }

  status(): SubsystemStatus {
    if (this.stopped) return { state: 'stopped' };
    if (!this.configured) return { state: 'disabled', reason: 'proxy_services is not set' };
    if (!this.proxy) return { state: 'failed', reason: 'proxy_services: cannot start' };
    return { state: 'running', mode: this.proxy.mode, listeners: this.proxy.stats() };
  }

  /** The listeners' counters (the SIGUSR1 dump), undefined while no proxy runs. */
  stats(): ListenerStats[] | undefined {
    return this.proxy?.stats();
  }

  private async open(c: ProxyConfig): Promise<ServiceProxy | undefined> {
    if (!c.proxyServices) return undefined;
    // The proxy's code is loaded only when proxy_services asks for it.
    const { ServiceProxy } = await import('../proxy/proxy.js');
    const p = new ServiceProxy({
      listen: parseProxySpecs([c.proxyServices], 'proxy_services'),
      source: this.source,
      log: this.log,
      drainTimeoutMs: c.proxyDrainTimeout * 1000,
      maxConnections: c.proxyMaxConnections,
      idleTimeoutMs: c.proxyIdleTimeout * 1000,
      mode: c.proxyMode as ProxyMode,
      kernelTable: AGENT_TABLE,
    });
    try {
      await p.start();
      return p;
    } catch (err) {
      this.log.error(
        { err: (err as Error).message },
        'proxy_services: cannot start; the proxy is not running',
      );
      return undefined;
    }
  }

  // A previous run (restarted: its rules were left in force for this one) may have left the agent's
  // table; without the kernel path now, it must go, or it would keep sending to old endpoints.
  private async clearAgentKernelRules(): Promise<void> {
    const { NftNetfilter, removeKernelRules } = await import('../proxy/kernel.js');
    const nf = new NftNetfilter();
    if ((await nf.probe()) !== undefined) return;
    if ((await nf.tables(AGENT_TABLE)).includes(AGENT_TABLE)) {
      this.log.info({ table: AGENT_TABLE }, 'proxy: removing the kernel rules a previous run left');
      await removeKernelRules(nf, AGENT_TABLE, this.log);
    }
  }
}
