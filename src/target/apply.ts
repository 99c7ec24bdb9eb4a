/**
 * The one executor for first boot (see types.ts): carries out a plan against a root directory.
 *
 * INTERFACE ONLY in this commit: the body lands with the target executor work (issue 14). The
 * cloud-config and Ignition front ends code against this signature.
 */
import { FlotillaError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import type { ApplyResult, PlannedAction } from './types.js';

export interface ApplyOptions {
  /** The target's root: `/` at boot, a directory tree with `--root DIR`. */
  root: string;
  /**
   * A live system (root `/` on a booted host): hostnames are also set with sethostname, unit
   * `command`s run through systemd after a daemon-reload. False for `--root` trees and image builds.
   */
  live: boolean;
  log?: Logger;
}

/**
 * Check every action first (paths inside root, names valid, owners resolvable), then apply them in
 * plan order. Throws FlotillaError E_TARGET naming the action's reason when a check fails; nothing
 * is written then.
 */
export function applyPlan(plan: readonly PlannedAction[], opts: ApplyOptions): Promise<ApplyResult> {
  void plan;
  void opts;
  return Promise.reject(new FlotillaError('E_TARGET', 'the target executor is not built yet'));
}
