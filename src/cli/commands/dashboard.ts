/**
 * `flotilla dashboard login-url`: print a one-time login URL for this machine's dashboard, as
 * Jupyter does. Runs as root on the machine: the token is handed to the agent through a root-only
 * directory under data_dir (see src/dashboard/auth.ts); it appears only in the printed URL's fragment.
 */
import { hostname } from 'node:os';
import { loadConfig } from '../../daemon/config.js';
import { issueToken, type Role } from '../../dashboard/auth.js';
import { parseHostPort } from '../../lib/net.js';
import { FlotillaError } from '../../lib/errors.js';
import { UsageError, type Command } from '../command.js';

export const dashboard: Command = {
  name: 'dashboard',
  summary: 'Web dashboard: print a one-time login URL (dashboard login-url)',
  usage: 'dashboard login-url [--role=viewer|operator] [--ttl=SECONDS] [--config=PATH]',
  flags: {
    role: { type: 'string', value: 'ROLE', default: 'viewer', help: 'viewer (read only) or operator' },
    ttl: { type: 'string', value: 'SECONDS', default: '600', help: 'How long the URL may be used (once)' },
    config: {
      type: 'string',
      value: 'PATH',
      help: 'Agent config file (default /etc/flotilla/flotilla.conf)',
    },
  },
  run(ctx) {
    if (ctx.args[0] !== 'login-url' || ctx.args.length !== 1)
      throw new UsageError('dashboard: expected the subcommand login-url');
    const { config } = loadConfig(
      typeof ctx.flags.config === 'string' ? { configFile: ctx.flags.config } : {},
    );
    const hp = config.dashboardListen ? parseHostPort(config.dashboardListen) : undefined;
    if (!hp)
      throw new FlotillaError(
        'E_CONFIG',
        'dashboard_listen is not set: the dashboard is off on this machine',
        {
          field: 'dashboard_listen',
        },
      );
    const ttl = Number(ctx.flags.ttl);
    const token = issueToken(config.dataDir, String(ctx.flags.role) as Role, ttl);
    const wild = hp.host === '0.0.0.0' || hp.host === '::' || hp.host === '';
    const host = wild ? (config.publicIp ?? hostname()) : hp.host;
    const scheme = config.dashboardCertfile ? 'https' : 'http';
    const h = host.includes(':') ? `[${host}]` : host;
    ctx.io.out(`${scheme}://${h}:${hp.port}/ui/login#token=${token}\n`);
    return Promise.resolve(0);
  },
};
