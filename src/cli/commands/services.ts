/**
 * `flotilla list-services [NAME]`: every registered service endpoint (service discovery), one row
 * per endpoint, fleetctl's table style (tabwriter) or `-o json`. Health is the container's Docker
 * health: `healthy`, `starting` (not yet passed: gets no traffic), or `none` (no health check).
 */
import type { ApiService } from '../../api/services.js';
import { FlotillaError } from '../../lib/errors.js';
import { ApiError, clientFromGlobals } from '../client.js';
import type { Command } from '../command.js';
import { tabwrite } from '../tabwriter.js';
import { shortId } from '../fleet.js';

const FIELDS = ['service', 'endpoint', 'machine', 'health', 'unit', 'container', 'registered'] as const;

export const listServicesCmd: Command = {
  name: 'list-services',
  summary: 'List the registered services with their endpoints and health',
  usage:
    'list-services [NAME] [--fields=service,endpoint,machine,health,unit] [--full] [--no-legend] [-o json]',
  flags: {
    fields: {
      type: 'string',
      default: 'service,endpoint,machine,health,unit',
      value: 'FIELDS',
      help: `Columns to print, comma separated (${FIELDS.join(', ')})`,
    },
    'no-legend': { type: 'boolean', default: false, help: 'Do not print a legend (column headers)' },
    full: { type: 'boolean', default: false, help: 'Do not ellipsize fields on output' },
    l: { type: 'boolean', short: 'l', default: false, help: 'Shorthand for --full' },
    output: { type: 'string', short: 'o', default: 'table', value: 'FORMAT', help: 'table or json' },
  },
  async run(ctx) {
    if (ctx.args.length > 1)
      throw new FlotillaError('E_USAGE', 'list-services takes at most one service name');
    const output = String(ctx.flags.output ?? 'table');
    if (output !== 'table' && output !== 'json')
      throw new FlotillaError('E_USAGE', `--output: ${JSON.stringify(output)} must be table or json`);
    const fields = String(ctx.flags.fields ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    if (fields.length === 0) throw new FlotillaError('E_USAGE', 'Must define output format');
    for (const f of fields) {
      if (!(FIELDS as readonly string[]).includes(f))
        throw new FlotillaError('E_USAGE', `Invalid key in output format: ${JSON.stringify(f)}`);
    }
    const client = await clientFromGlobals(ctx.globals, ctx.env);
    let services: ApiService[];
    const name = ctx.args[0];
    if (name !== undefined) {
      try {
        const r = await client.request<ApiService>(
          'GET',
          `/flotilla/v1/services/${encodeURIComponent(name)}`,
        );
        services = r.body ? [r.body] : [];
      } catch (err) {
        if (err instanceof ApiError && err.status === 404) services = [];
        else throw err;
      }
    } else {
      const r = await client.request<{ services: ApiService[] }>('GET', '/flotilla/v1/services');
      services = r.body?.services ?? [];
    }
    if (output === 'json') {
      ctx.io.out(`${JSON.stringify({ services }, null, 2)}\n`);
      return 0;
    }
    const full = ctx.flags.full === true || ctx.flags.l === true;
    const lines: string[][] = [];
    if (ctx.flags['no-legend'] !== true) lines.push(fields.map((f) => f.toUpperCase()));
    for (const s of services) {
      for (const e of s.endpoints) {
        const row: Record<string, string> = {
          service: s.name,
          endpoint: e.address,
          machine: shortId(e.machineID, full),
          health: e.health,
          unit: e.unit ?? '-',
          container: full ? e.container : e.container.slice(0, 12),
          registered: new Date(e.registered).toISOString(),
        };
        lines.push(fields.map((f) => row[f] || '-'));
      }
    }
    ctx.io.out(tabwrite(lines));
    if (name !== undefined && services.length === 0) {
      ctx.io.err(`Service ${name} has no endpoints.\n`);
      return 1;
    }
    return 0;
  },
};
