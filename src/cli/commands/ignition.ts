/**
 * `flotilla ignition-validate FILE` (as Ignition's `ignition-validate`: every finding printed to
 * stderr as `error|warning at $.path, line L col C: message`; exit 1 when there is an error, 0
 * otherwise, warnings included) and `flotilla ignition --stage fetch|disks|files --platform
 * vmware|qemu|file|metal` (src/ignition/stages.ts; first boot only). Both use the same validator.
 */
import { readFile } from 'node:fs/promises';
import { IGNITION_PLATFORMS, type IgnitionPlatform } from '../../datasource/ignition.js';
import { FlotillaError } from '../../lib/errors.js';
import type { Command } from '../command.js';
import { UsageError } from '../command.js';

async function readInput(file: string): Promise<Buffer> {
  if (file === '-') {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  }
  try {
    return await readFile(file);
  } catch (err) {
    throw new FlotillaError('E_IGNITION', `cannot read ${file}: ${(err as Error).message}`, { path: file });
  }
}

export const ignitionValidate: Command = {
  name: 'ignition-validate',
  summary: 'Validate an Ignition config (as ignition-validate): errors and warnings with JSON paths',
  usage: 'ignition-validate FILE|-',
  description:
    'Checks the config against the Ignition spec schema of its version (3.0.0–3.4.0; 2.0.0–2.3.0 are translated)\n' +
    'and against what flotilla can apply. Prints each finding to stderr as\n' +
    '  error at $.storage.files[0].mode, line 5 col 17: must be integer\n' +
    'Exits 1 when there is an error, 0 otherwise.',
  complete: 'files',
  async run(ctx) {
    if (ctx.args.length !== 1)
      throw new UsageError('ignition-validate takes exactly one FILE (or - for stdin)');
    const { validateIgnition } = await import('../../ignition/parse.js');
    const { formatIssue } = await import('../../ignition/types.js');
    const result = validateIgnition(await readInput(ctx.args[0]!));
    for (const issue of result.issues) ctx.io.err(`${formatIssue(issue)}\n`);
    return result.issues.some((i) => i.kind === 'error') ? 1 : 0;
  },
};

export const ignition: Command = {
  name: 'ignition',
  summary: 'Run an Ignition stage (fetch, disks, files) on first boot',
  usage:
    'ignition --stage=fetch|disks|files --platform=vmware|qemu|file|metal|auto [--config=FILE] [--root=DIR]',
  description:
    'fetch: read the platform config, validate it, resolve ignition.config.merge/replace and cache it (0600).\n' +
    'disks: refuse storage.disks/raid/luks/filesystems (flotilla does not partition); otherwise nothing.\n' +
    'files: write files, directories, links, units, users and groups, then record /etc/.ignition-result.json.\n' +
    'Runs only on the first boot: ignition.firstboot on the kernel command line or /boot/flotilla/first-boot,\n' +
    'and no /etc/.ignition-result.json yet.',
  flags: {
    stage: { type: 'string', value: 'STAGE', help: 'fetch, disks or files' },
    platform: {
      type: 'string',
      value: 'PLATFORM',
      help: `Where the config comes from: ${IGNITION_PLATFORMS.join(', ')}, or auto (ignition.platform.id= on the kernel command line, else metal)`,
    },
    config: { type: 'string', value: 'FILE', help: 'The config file (platform file)' },
    root: { type: 'string', value: 'DIR', default: '/', help: 'Apply into this directory tree instead of /' },
    'run-dir': {
      type: 'string',
      value: 'DIR',
      default: '/run',
      help: 'Where the fetched config is cached',
      hidden: true,
    },
    cmdline: {
      type: 'string',
      value: 'FILE',
      help: 'Kernel command line file (default /proc/cmdline)',
      hidden: true,
    },
    'fw-cfg': { type: 'string', value: 'FILE', help: 'qemu fw_cfg config file', hidden: true },
    verbose: { type: 'boolean', short: 'v', default: false, help: 'Log debug messages' },
  },
  async run(ctx) {
    if (ctx.args.length > 0) throw new UsageError('ignition takes no arguments');
    const stage = ctx.flags.stage;
    const { STAGES, runStage } = await import('../../ignition/stages.js');
    let platform = ctx.flags.platform;
    if (platform === 'auto') {
      // As Ignition images set it: ignition.platform.id= on the kernel command line, else metal.
      const { readFileSync } = await import('node:fs');
      const cmdline = readFileSync(
        typeof ctx.flags.cmdline === 'string' ? ctx.flags.cmdline : '/proc/cmdline',
        'utf8',
      );
      const id = /(?:^|\s)ignition\.platform\.id=(\S+)/.exec(cmdline)?.[1] ?? 'metal';
      if (!(IGNITION_PLATFORMS as readonly string[]).includes(id)) {
        throw new UsageError(
          `ignition.platform.id=${id} on the kernel command line: not one of ${IGNITION_PLATFORMS.join(', ')}`,
        );
      }
      platform = id;
    }
    if (typeof stage !== 'string' || !(STAGES as readonly string[]).includes(stage)) {
      throw new UsageError(`--stage must be one of ${STAGES.join(', ')}`);
    }
    if (typeof platform !== 'string' || !(IGNITION_PLATFORMS as readonly string[]).includes(platform)) {
      throw new UsageError(`--platform must be one of ${IGNITION_PLATFORMS.join(', ')}`);
    }
    const config = typeof ctx.flags.config === 'string' ? ctx.flags.config : undefined;
    if (platform === 'file' && stage === 'fetch' && config === undefined) {
      throw new UsageError('--platform=file needs --config=FILE');
    }
    const { createLogger } = await import('../../lib/log.js');
    const log = createLogger({ verbosity: ctx.flags.verbose === true ? 1 : 0 });
    const str = (k: string): string | undefined =>
      typeof ctx.flags[k] === 'string' ? ctx.flags[k] : undefined;
    const result = await runStage(stage as (typeof STAGES)[number], {
      platform: platform as IgnitionPlatform,
      root: str('root') ?? '/',
      runDir: str('run-dir') ?? '/run',
      ...(str('cmdline') ? { cmdlinePath: str('cmdline')! } : {}),
      source: {
        ...(config !== undefined ? { path: config } : {}),
        ...(str('fw-cfg') ? { fwCfgPath: str('fw-cfg')! } : {}),
        ...(str('cmdline') ? { cmdlinePath: str('cmdline')! } : {}),
      },
      log,
    });
    if (!result.ran) ctx.io.out(`Ignition skipped: ${result.why}\n`);
    else if (result.stage === 'files') {
      ctx.io.out(
        `Ignition files stage done: ${result.changed ?? 0} changed, ${result.unchanged ?? 0} unchanged\n`,
      );
    } else ctx.io.out(`Ignition ${result.stage} stage done\n`);
    return 0;
  },
};
