/**
 * The coreos-cloudinit pipeline (host-tools.md §1.2), one run:
 *
 *   select the datasource → fetch user-data (gunzip) → validate and log the report (with -validate:
 *   print it and exit 1 if it has entries, else 0) → fetch metadata → substitute $*_ipv* → parse →
 *   plan (pure, every check) → apply through the one executor → run a `#!` script.
 *
 * Differences from coreos-cloudinit, on purpose: when the user-data cannot be used (a fetch error,
 * an unrecognised format, a cloud-config with fatal entries) nothing at all is applied and the run
 * exits 1 (coreos-cloudinit still applied the metadata's hostname and keys); an empty substitution
 * is a warning. An Ignition config prints `Detected an Ignition config. Exiting...` and exits 0: it
 * is `flotilla ignition`'s to apply.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import { join } from 'node:path';
import { selectDatasource, type SelectOptions } from '../datasource/select.js';
import type { Datasource, Metadata } from '../datasource/types.js';
import { FlotillaError } from '../lib/errors.js';
import { nullLogger, type Logger } from '../lib/log.js';
import type { ApplyOptions } from '../target/apply.js';
import type { ApplyResult, PlannedAction } from '../target/types.js';
import { parseCloudConfig } from './config.js';
import { applySubstitutions, substitutionsFrom } from './env.js';
import { OBSERVED_FILES, planCloudConfig, type Observed } from './plan.js';
import {
  decodeUserdata,
  detectFormat,
  IGNITION_DETECTED,
  MULTIPART_REFUSED,
  UNRECOGNIZED,
} from './userdata.js';
import { formatEntry, validate } from './validate.js';

export const DEFAULT_WORKSPACE = '/var/lib/coreos-cloudinit';
export const SCRIPT_DESCRIPTION = 'Unit generated and executed by coreos-cloudinit on behalf of user';

/** Queues start jobs for `units` without waiting for them (a live system only). */
export type NoBlockStarter = (units: string[]) => Promise<void>;

/** Starts `/bin/bash PATH` as the transient unit `unit` (a live system only). */
export type ScriptRunner = (unit: string, path: string) => Promise<void>;

export interface RunOptions {
  sources: Datasource[];
  validateOnly?: boolean;
  /** Target root (`/` at boot). */
  root: string;
  /** A booted system: hostnames set, unit commands and scripts run. False with --root. */
  live: boolean;
  workspace?: string;
  sshKeyName?: string;
  convertNetconf?: boolean;
  ignoreFailure?: boolean;
  env?: NodeJS.ProcessEnv;
  log?: Logger;
  /** Report lines of -validate (stdout) and the Ignition notice. */
  print: (line: string) => void;
  apply: (plan: readonly PlannedAction[], opts: ApplyOptions) => Promise<ApplyResult>;
  runScript?: ScriptRunner;
  /** Default: `systemctl start --no-block -- UNIT…` (argv). */
  startNoBlock?: NoBlockStarter;
  select?: Omit<SelectOptions, 'log'>;
  /** The target's hostname now (default: os.hostname() live, <root>/etc/hostname otherwise). */
  currentHostname?: () => string;
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function observe(opts: RunOptions): Observed {
  const files: Record<string, string | undefined> = {};
  for (const f of OBSERVED_FILES) files[f] = readText(join(opts.root, f));
  const hostname =
    opts.currentHostname?.() ??
    (opts.live ? osHostname() : (readText(join(opts.root, 'etc/hostname')) ?? '').trim());
  return { files, hostname };
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** One run; resolves to the process exit code (coreos-cloudinit's). */
export async function runCloudinit(opts: RunOptions): Promise<number> {
  const log = opts.log ?? nullLogger;
  let failure = false;
  let ds: Datasource;
  try {
    ds = await selectDatasource(opts.sources, { ...opts.select, log });
  } catch (err) {
    log.error({}, message(err));
    return 1;
  }
  log.info(
    { type: ds.type, root: ds.configRoot() },
    `Fetching user-data from datasource of type ${JSON.stringify(ds.type)}`,
  );
  let text = '';
  try {
    text = decodeUserdata(await ds.fetchUserdata());
  } catch (err) {
    log.error({ type: ds.type }, `Failed fetching user-data from datasource: ${message(err)}`);
    failure = true;
  }

  const entries = validate(text);
  for (const e of entries) {
    const line = formatEntry(e);
    if (opts.validateOnly) opts.print(line);
    else log[e.kind === 'error' ? 'error' : e.kind === 'warning' ? 'warn' : 'info']({ line: e.line }, line);
  }
  if (opts.validateOnly) return failure || entries.length > 0 ? 1 : 0;

  let md: Metadata;
  try {
    md = await ds.fetchMetadata();
  } catch (err) {
    log.error({ type: ds.type }, `Failed fetching meta-data from datasource: ${message(err)}`);
    return 1;
  }
  const subs = substitutionsFrom(md, opts.env ?? {});
  const substituted = applySubstitutions(text, subs);
  for (const w of substituted.warnings) log.warn({ token: w.token, line: w.line }, w.message);

  const format = failure ? 'failed' : detectFormat(substituted.text);
  // -ignore-failure: malformed user-data still exits 0 (nothing of it is applied).
  const bad = opts.ignoreFailure ? 0 : 1;
  let actions: PlannedAction[] = [];
  let startAfter: string[] = [];
  let script: { unit: string; path: string } | undefined;
  try {
    switch (format) {
      case 'failed':
        return bad;
      case 'ignition':
        opts.print(IGNITION_DETECTED);
        return 0;
      case 'multipart':
        log.error({}, `${UNRECOGNIZED}: ${MULTIPART_REFUSED}`);
        return bad;
      case 'unrecognized':
        log.error({}, UNRECOGNIZED);
        return bad;
      case 'empty':
      case 'script':
      case 'cloud-config': {
        const config =
          format === 'cloud-config'
            ? parseCloudConfig(substituted.text).config
            : parseCloudConfig('#cloud-config\n').config;
        const plan = planCloudConfig({
          config,
          metadata: md,
          substitutions: subs,
          observed: observe(opts),
          ...(opts.sshKeyName ? { sshKeyName: opts.sshKeyName } : {}),
          ...(opts.convertNetconf ? { convertNetconf: true } : {}),
        });
        for (const w of plan.warnings) log.warn({}, w);
        actions = plan.actions;
        startAfter = plan.startAfterApply;
        if (format === 'script') {
          const name = randomBytes(6).toString('hex');
          const dir = join(opts.workspace ?? DEFAULT_WORKSPACE, 'scripts');
          script = { unit: `coreos-cloudinit-${name}.service`, path: join(dir, name) };
          actions.push(
            {
              action: {
                kind: 'file',
                path: script.path,
                contents: Buffer.from(substituted.text),
                mode: 0o744,
              },
              reason: 'user-data script',
            },
            {
              action: {
                kind: 'file',
                path: join(dir, 'unit-name'),
                contents: Buffer.from(`${script.unit}\n`),
                mode: 0o644,
              },
              reason: 'user-data script',
            },
          );
        }
        break;
      }
    }
  } catch (err) {
    if (err instanceof FlotillaError) {
      log.error({ code: err.code }, `Failed to parse user-data: ${err.message}`);
      return bad;
    }
    throw err;
  }

  try {
    const result = await opts.apply(actions, { root: opts.root, live: opts.live, log });
    log.info({ changed: result.changed.length, unchanged: result.unchanged.length }, 'cloud-config applied');
  } catch (err) {
    log.error({}, `Failed to apply cloud-config: ${message(err)}`);
    return 1;
  }

  if (opts.live && startAfter.length > 0) {
    try {
      await (opts.startNoBlock ?? systemctlNoBlock)(startAfter);
      log.info({ units: startAfter }, `queued start of ${startAfter.join(', ')}`);
    } catch (err) {
      log.error({ units: startAfter }, `Failed to start ${startAfter.join(', ')}: ${message(err)}`);
      return 1;
    }
  }

  if (script) {
    if (opts.live && opts.runScript) {
      try {
        await opts.runScript(script.unit, script.path);
        log.info({ unit: script.unit }, `started user-data script as ${script.unit}`);
      } catch (err) {
        log.error({ unit: script.unit }, `Failed to run script: ${message(err)}`);
        return 1;
      }
    } else {
      log.info({ path: script.path }, 'user-data script written, not run (not a live system)');
    }
  }
  return failure && !opts.ignoreFailure ? 1 : 0;
}

/** `systemctl start --no-block -- UNIT…` as an argv. */
export const systemctlNoBlock: NoBlockStarter = async (units) => {
  const { execArgv } = await import('../datasource/exec.js');
  const r = await execArgv('systemctl', ['start', '--no-block', '--', ...units], { timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`systemctl start --no-block: ${r.stderr.trim() || `exit ${r.code}`}`);
};

/** The live script runner: StartTransientUnit over the system bus (`/bin/bash PATH`). */
export const systemdScriptRunner: ScriptRunner = async (unit, path) => {
  const { DbusSystemdManager } = await import('../systemd/dbus-manager.js');
  const m = await DbusSystemdManager.connect({ transientPrefix: 'coreos-cloudinit-' });
  try {
    await m.startTransient({ name: unit, command: ['/bin/bash', path], description: SCRIPT_DESCRIPTION });
  } finally {
    await m.close();
  }
};
