/**
 * The Ignition stages `flotilla ignition --stage …` runs, in Ignition's order (first boot only,
 * firstboot.ts):
 *
 * - `fetch`: read the platform's config (src/datasource/ignition.ts), validate it, render
 *   `ignition.config.merge/replace`, validate the result, and cache it at
 *   `<runDir>/flotilla/ignition.json` (0600, directory 0700). No config from the platform means an
 *   empty one, as Ignition then runs with none.
 * - `disks`: flotilla does no partitioning, RAID, LUKS or filesystems: a config asking for any is
 *   refused with the key named; otherwise nothing to do.
 * - `files`: fetch file contents, plan (pure), and hand the plan to the one executor
 *   (src/target/apply.ts); then record the result so the next boot skips Ignition.
 *
 * Every stage validates the cached config completely before doing anything, so a refused or
 * invalid config applies nothing. Logs name paths, keys and counts; never contents or hashes.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  fetchIgnitionConfig,
  type IgnitionFetchOptions,
  type IgnitionPlatform,
} from '../datasource/ignition.js';
import { FlotillaError, isErrno } from '../lib/errors.js';
import { writeAtomic } from '../lib/fs.js';
import { nullLogger, type Logger } from '../lib/log.js';
import { applyPlan, type ApplyOptions } from '../target/apply.js';
import type { ApplyResult, PlannedAction } from '../target/types.js';
import { semanticIssues, storageRefusals } from './checks.js';
import { firstBoot, recordResult } from './firstboot.js';
import { renderConfig } from './merge.js';
import { parseIgnition } from './parse.js';
import { planIgnition } from './plan.js';
import { resolveContents } from './resources.js';
import { formatIssue, type IgnitionConfig, type Issue } from './types.js';

export type Stage = 'fetch' | 'disks' | 'files';
export const STAGES: readonly Stage[] = ['fetch', 'disks', 'files'];
export const CACHE_NAME = 'flotilla/ignition.json';

export interface StageOptions {
  platform: IgnitionPlatform;
  /** Target root (default `/`). */
  root?: string;
  /** Where the fetched config is cached (default `/run`). */
  runDir?: string;
  /** Kernel command line for the first-boot check (default /proc/cmdline). */
  cmdlinePath?: string;
  /** Platform options (file path, fw_cfg path, guestinfo port …). */
  source?: Omit<IgnitionFetchOptions, 'log'>;
  log?: Logger;
  /** The executor (default: applyPlan). */
  apply?: (plan: readonly PlannedAction[], opts: ApplyOptions) => Promise<ApplyResult>;
}

export type StageResult =
  { ran: false; why: string } | { ran: true; stage: Stage; changed?: number; unchanged?: number };

interface Cached {
  version: string;
  platform: string;
  userConfigProvided: boolean;
  config: IgnitionConfig;
}

const EMPTY_VERSION = '3.4.0';

function cachePath(opts: StageOptions): string {
  return join(opts.runDir ?? '/run', CACHE_NAME);
}

function refuse(issues: Issue[], what: string): void {
  const errors = issues.filter((i) => i.kind === 'error');
  if (errors.length === 0) return;
  throw new FlotillaError(
    'E_IGNITION',
    `${what}: ${errors.map((e) => `${e.path}: ${e.message}`).join('; ')}; nothing was applied`,
    { errors: errors.map(formatIssue) },
  );
}

function readCache(opts: StageOptions): Cached {
  const path = cachePath(opts);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if (isErrno(err, 'ENOENT')) {
      throw new FlotillaError('E_IGNITION', `no fetched config at ${path}: run the fetch stage first`, {
        path,
      });
    }
    throw err;
  }
  const cached = JSON.parse(text) as Cached;
  // The cache is ours, but it is re-checked: nothing is applied from a config that fails now.
  refuse(semanticIssues(cached.config), `cached config ${path}`);
  return cached;
}

async function fetchStage(opts: StageOptions, log: Logger): Promise<StageResult> {
  const raw = await fetchIgnitionConfig(opts.platform, { ...opts.source, log });
  if (raw === undefined && opts.platform === 'file') {
    // A config file named on purpose and missing is a mistake, not "no config": do not provision
    // an empty machine and mark it done.
    const path = opts.source?.path ?? '(none)';
    throw new FlotillaError('E_IGNITION', `ignition config file ${path} does not exist`, { path });
  }
  const userConfigProvided = raw !== undefined;
  if (!userConfigProvided)
    log.info({ platform: opts.platform }, 'the platform provides no Ignition config: using an empty one');
  const parsed = parseIgnition(
    raw ?? JSON.stringify({ ignition: { version: EMPTY_VERSION } }),
    `ignition config (${opts.platform})`,
  );
  for (const w of parsed.warnings) log.warn({ platform: opts.platform }, formatIssue(w));
  const timeout = parsed.config.ignition.timeouts?.httpResponseHeaders;
  const fetch = typeof timeout === 'number' && timeout > 0 ? { timeoutMs: timeout * 1000 } : {};
  const rendered = await renderConfig(parsed.config, { log, fetch: { log, ...fetch } });
  refuse(semanticIssues(rendered), 'the rendered config');
  const cached: Cached = {
    version: parsed.version,
    platform: opts.platform,
    userConfigProvided,
    config: rendered,
  };
  writeAtomic(cachePath(opts), JSON.stringify(cached), { mode: 0o600, mkdirMode: 0o700 });
  log.info(
    { platform: opts.platform, version: parsed.version, cache: cachePath(opts) },
    'Ignition config fetched and validated',
  );
  return { ran: true, stage: 'fetch' };
}

function disksStage(opts: StageOptions, log: Logger): StageResult {
  const cached = readCache(opts);
  refuse(storageRefusals(cached.config), 'the disks stage');
  log.info({}, 'disks stage: no disks, RAID, LUKS or filesystems requested: nothing to do');
  return { ran: true, stage: 'disks' };
}

async function filesStage(opts: StageOptions, log: Logger): Promise<StageResult> {
  const cached = readCache(opts);
  const root = opts.root ?? '/';
  const timeout = cached.config.ignition.timeouts?.httpResponseHeaders;
  const contents = await resolveContents(cached.config, {
    fetch: { log, ...(typeof timeout === 'number' && timeout > 0 ? { timeoutMs: timeout * 1000 } : {}) },
  });
  const plan = planIgnition(cached.config, contents);
  log.info({ actions: plan.length, root }, 'files stage: applying the plan');
  const result = await (opts.apply ?? applyPlan)(plan, { root, live: root === '/', log });
  for (const c of result.changed) log.info({ reason: c.reason }, 'changed');
  recordResult(
    root,
    {
      version: cached.version,
      platform: cached.platform,
      userConfigProvided: cached.userConfigProvided,
      changed: result.changed.length,
      unchanged: result.unchanged.length,
    },
    cached.config,
  );
  return { ran: true, stage: 'files', changed: result.changed.length, unchanged: result.unchanged.length };
}

/** Run one stage; on a machine that is not at its first boot, do nothing and say why. */
export async function runStage(stage: Stage, opts: StageOptions): Promise<StageResult> {
  const log = opts.log ?? nullLogger;
  const gate = await firstBoot({
    root: opts.root ?? '/',
    ...(opts.cmdlinePath ? { cmdlinePath: opts.cmdlinePath } : {}),
  });
  if (!gate.firstBoot) {
    log.info({ stage }, `Ignition skipped: ${gate.why}`);
    return { ran: false, why: gate.why };
  }
  switch (stage) {
    case 'fetch':
      return fetchStage(opts, log);
    case 'disks':
      return disksStage(opts, log);
    case 'files':
      return filesStage(opts, log);
    default:
      throw new FlotillaError(
        'E_USAGE',
        `unknown stage ${JSON.stringify(stage)} (one of ${STAGES.join(', ')})`,
      );
  }
}
