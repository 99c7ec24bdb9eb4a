/**
 * The one executor for first boot (see types.ts): carries out a plan against a root directory.
 *
 * 1. The whole plan is checked first (validate.ts): paths inside the root, names, owners, unit
 *    bodies. Any problem throws E_TARGET naming the action's reason and the field; nothing is
 *    written then.
 * 2. Actions run in plan order: files/directories/links (files.ts), groups and users through
 *    shadow-utils (users.ts), key sets (keys.ts), units (units.ts), the hostname (/etc/hostname).
 * 3. On a live system, once after all actions: daemon-reload when the plan has units, a restart of
 *    systemd-networkd when a networkd unit changed, then each unit `command` in plan order.
 * Each action lands in `changed` or `unchanged`; one info line per changed action names its
 * reason and path or name, never contents, hashes or keys.
 */
import { FlotillaError } from '../lib/errors.js';
import { nullLogger, type Logger } from '../lib/log.js';
import { runArgv, type Run } from './exec.js';
import { applyDirectory, applyFile, applyLink } from './files.js';
import { applyAuthorizedKeys } from './keys.js';
import { dbusTargetSystemd, setLiveHostname, type TargetSystemd } from './live.js';
import { readAccounts, resolveOwner, type Accounts } from './passwd.js';
import { realRoot } from './paths.js';
import type { ApplyResult, PlannedAction, TargetAction } from './types.js';
import { applyUnit, isNetworkUnit, type UnitCommand } from './units.js';
import { applyGroup, applyUser } from './users.js';
import { checkPlan } from './validate.js';

export interface ApplyOptions {
  /** The target's root: `/` at boot, a directory tree with `--root DIR`. */
  root: string;
  /**
   * A live system (root `/` on a booted host): hostnames are also set with sethostname, unit
   * `command`s run through systemd after a daemon-reload. False for `--root` trees and image builds.
   */
  live: boolean;
  log?: Logger;
  /** How host tools run (default: spawn with an argv). */
  run?: Run;
  /** systemd for a live apply (default: the system bus through DbusSystemdManager, on first use). */
  systemd?: TargetSystemd;
}

/**
 * Ignition enables units before the real root boots, so they start in that first boot. Here the
 * files stage runs inside the boot, after systemd computed which units the boot starts: a unit
 * enabled into a target this boot is reaching (active, activating or with a start job queued) is
 * started now (queued while flotilla-ignition itself is activating); one enabled only into other
 * targets waits for them, as it would under Ignition.
 */
export async function startWithBoot(
  systemd: TargetSystemd,
  units: readonly { name: string; enabledInto: string[]; reason: string }[],
  log: Logger,
): Promise<void> {
  for (const u of units) {
    let via: string | undefined;
    for (const t of u.enabledInto) {
      if (await systemd.inThisBoot(t)) {
        via = t;
        break;
      }
    }
    if (via === undefined) {
      log.info(
        { reason: u.reason, unit: u.name, targets: u.enabledInto.join(' ') },
        'first boot: enabled unit starts when its target is reached',
      );
      continue;
    }
    const outcome = await systemd.unitCommand(u.name, 'start');
    log.info(
      { reason: u.reason, unit: u.name, target: via },
      outcome === 'done'
        ? 'first boot: enabled unit started with this boot'
        : 'first boot: enabled unit queued to start with this boot',
    );
  }
}

/** What to name in the log line of a changed action. */
function subject(a: TargetAction): Record<string, string> {
  switch (a.kind) {
    case 'file':
    case 'directory':
    case 'link':
      return { path: a.path };
    case 'user':
    case 'group':
    case 'unit':
      return { name: a.name };
    case 'authorized-keys':
      return { user: a.user, set: a.setName };
    case 'hostname':
      return { hostname: a.hostname };
  }
}

class Runner {
  private accounts: Accounts | undefined;
  unitActions = 0;
  networkChanged = false;
  readonly commands: { name: string; command: UnitCommand; reason: string }[] = [];
  /** Ignition-enabled units to start with this boot (UnitAction.bootStart). */
  readonly bootStarts: { name: string; enabledInto: string[]; reason: string }[] = [];

  constructor(
    private readonly root: string,
    private readonly opts: ApplyOptions,
    private readonly run: Run,
  ) {}

  private ids(owner: Parameters<typeof resolveOwner>[0], reason: string): { uid: number; gid: number } {
    this.accounts ??= readAccounts(this.root);
    return resolveOwner(owner, this.accounts, reason);
  }

  async apply(a: TargetAction, reason: string): Promise<boolean> {
    const root = this.root;
    switch (a.kind) {
      case 'file':
        return applyFile(root, a, this.ids(a.owner, reason), reason);
      case 'directory':
        return applyDirectory(root, a, this.ids(a.owner, reason), reason);
      case 'link':
        return applyLink(root, a, this.ids(a.owner, reason), reason);
      case 'group': {
        const changed = await applyGroup(root, a, this.run, reason);
        this.accounts = undefined;
        return changed;
      }
      case 'user': {
        const changed = await applyUser(root, a, this.run, reason);
        this.accounts = undefined;
        return changed;
      }
      case 'authorized-keys':
        return applyAuthorizedKeys(root, a, reason);
      case 'unit': {
        this.unitActions++;
        const out = applyUnit(root, a, reason);
        if (out.network && out.changed) this.networkChanged = true;
        if (a.bootStart && out.enabledInto.length > 0) {
          this.bootStarts.push({ name: a.name, enabledInto: out.enabledInto, reason });
        }
        if (a.command !== undefined && !isNetworkUnit(a.name)) {
          this.commands.push({ name: a.name, command: a.command as UnitCommand, reason });
        }
        return out.changed;
      }
      case 'hostname': {
        const file = {
          kind: 'file' as const,
          path: '/etc/hostname',
          contents: Buffer.from(`${a.hostname}\n`),
          mode: 0o644,
        };
        let changed = applyFile(root, file, { uid: 0, gid: 0 }, reason);
        if (this.opts.live) changed = (await setLiveHostname(a.hostname, this.run)) || changed;
        return changed;
      }
    }
  }
}

/**
 * Check every action first (paths inside root, names valid, owners resolvable), then apply them in
 * plan order. Throws FlotillaError E_TARGET naming the action's reason when a check fails; nothing
 * is written then.
 */
export async function applyPlan(plan: readonly PlannedAction[], opts: ApplyOptions): Promise<ApplyResult> {
  const log = opts.log ?? nullLogger;
  const root = realRoot(opts.root);
  if (opts.live && root !== '/') {
    throw new FlotillaError('E_TARGET', `a live apply needs the root "/", not ${opts.root}`, {
      root: opts.root,
    });
  }
  checkPlan(plan, root);
  const runner = new Runner(root, opts, opts.run ?? runArgv);
  const result: ApplyResult = { changed: [], unchanged: [] };
  for (const p of plan) {
    let changed: boolean;
    try {
      changed = await runner.apply(p.action, p.reason);
    } catch (err) {
      if (err instanceof FlotillaError) throw err;
      // An I/O error (EACCES, ENOSPC, EROFS …): name the action; the message carries a path at most.
      throw new FlotillaError(
        'E_TARGET',
        `${p.reason}: ${(err as Error).message}`,
        { reason: p.reason },
        { cause: err },
      );
    }
    if (changed) {
      result.changed.push(p);
      log.info({ reason: p.reason, kind: p.action.kind, ...subject(p.action) }, 'first boot: applied');
    } else {
      result.unchanged.push(p);
      log.debug(
        { reason: p.reason, kind: p.action.kind, ...subject(p.action) },
        'first boot: already as planned',
      );
    }
  }
  if (!opts.live) {
    for (const b of runner.bootStarts) {
      log.debug({ reason: b.reason, unit: b.name }, 'not a live system: starts when the system boots');
    }
    for (const c of runner.commands) {
      log.debug(
        { reason: c.reason, unit: c.name, command: c.command },
        'not a live system: unit command skipped',
      );
    }
    return result;
  }
  if (runner.unitActions === 0) return result;
  const systemd = opts.systemd ?? dbusTargetSystemd();
  try {
    await systemd.daemonReload();
    log.info({}, 'first boot: systemd daemon-reload');
    if (runner.networkChanged) {
      await systemd.unitCommand('systemd-networkd.service', 'restart');
      log.info(
        { unit: 'systemd-networkd.service', command: 'restart' },
        'first boot: networkd units changed',
      );
    }
    await startWithBoot(systemd, runner.bootStarts, log);
    for (const c of runner.commands) {
      let outcome: 'done' | 'queued';
      try {
        outcome = await systemd.unitCommand(c.name, c.command);
      } catch (err) {
        // The job error (state, journal lines) goes to the caller as it is; the log names the reason.
        log.error(
          { reason: c.reason, unit: c.name, command: c.command, error: (err as Error).message },
          'first boot: unit command failed',
        );
        throw err;
      }
      log.info(
        { reason: c.reason, unit: c.name, command: c.command },
        outcome === 'done'
          ? 'first boot: unit command done'
          : 'first boot: unit command queued (the unit starts after this one)',
      );
    }
  } finally {
    if (!opts.systemd) await systemd.close();
  }
  return result;
}
