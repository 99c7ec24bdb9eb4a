/** `flotilla agent`: run the daemon. Every config key is also a flag (`--agent-ttl=3s`). */
import { IGNORED_KEYS, KEYS } from '../../daemon/config.js';
import type { Command, FlagSpec } from '../command.js';

const flags: Record<string, FlagSpec> = {
  config: {
    type: 'string',
    value: 'PATH',
    help: 'Config file (default /etc/flotilla/flotilla.conf, optional)',
  },
};
for (const key of [...Object.keys(KEYS), ...Object.keys(IGNORED_KEYS)]) {
  flags[key.replace(/_/g, '-')] = { type: 'string', value: 'VALUE', help: `Config key ${key}` };
}

export const agent: Command = {
  name: 'agent',
  summary: 'Run the flotilla agent (the daemon: agent, engine and API)',
  usage: 'agent [--config=PATH] [--etcd-servers=URL,...] [--metadata=k=v,...] [--agent-ttl=30s] ...',
  flags,
  async run(ctx) {
    const given: Record<string, string> = {};
    for (const [k, v] of Object.entries(ctx.flags)) if (k !== 'config' && typeof v === 'string') given[k] = v;
    if (ctx.args.length > 0) {
      ctx.io.err(`agent takes no arguments. Did you mean to invoke fleetctl instead?\n`);
      return 64;
    }
    // Loaded on demand: the CLI's other commands must not pay for D-Bus, etcd and the engine.
    const { runAgent } = await import('../../daemon/daemon.js');
    let code = 1;
    try {
      code = await runAgent({
        ...(typeof ctx.flags.config === 'string' ? { configFile: ctx.flags.config } : {}),
        flags: given,
      });
    } catch (err) {
      ctx.io.err(`flotilla agent: ${(err as Error).message}\n`);
      code = (err as { exitCode?: number }).exitCode ?? 1;
    }
    // Open registry/D-Bus handles must not keep a stopped daemon alive (stderr is synchronous here).
    process.exit(code);
  },
};
