/**
 * The target system that first boot writes to: the shared vocabulary of cloud-config
 * (src/cloudinit/) and Ignition (src/ignition/).
 *
 * Both front ends are planners: a validated config plus what the target holds now give a list of
 * TargetActions, each with a reason. One executor (src/target/apply.ts) carries them out against a
 * root directory (`/` at boot, `--root DIR` in tests and image builds): files atomically (tmp +
 * fsync + rename + dir fsync), users through useradd/usermod/chpasswd with `--root` as argv arrays,
 * units as files plus the symlinks `systemctl enable` makes. Re-running a plan that is already
 * applied changes nothing and rewrites no file.
 *
 * INVARIANTS: every path is absolute inside the target and is resolved against the root without
 * following a symlink out of it (`..` and symlinks that escape are refused before anything is
 * written); contents, password hashes and keys are never logged, only paths and names.
 */

export interface FileAction {
  kind: 'file';
  path: string;
  contents: Buffer;
  /** Permission bits (e.g. 0o644). */
  mode: number;
  /** User and group by name or numeric id; absent means root. */
  owner?: { user?: string | number; group?: string | number };
  /** Only write when the file does not exist (Ignition `overwrite: false`). */
  onlyIfAbsent?: boolean;
  /** Append instead of replace (Ignition `append`). */
  append?: boolean;
}

export interface DirectoryAction {
  kind: 'directory';
  path: string;
  mode: number;
  owner?: { user?: string | number; group?: string | number };
}

export interface LinkAction {
  kind: 'link';
  path: string;
  target: string;
  hard: boolean;
  owner?: { user?: string | number; group?: string | number };
}

export interface UserAction {
  kind: 'user';
  name: string;
  /** Set on a new user; on an existing one only passwordHash and keys are applied (cloud-config). */
  passwordHash?: string;
  uid?: number;
  gecos?: string;
  homeDir?: string;
  noCreateHome?: boolean;
  primaryGroup?: string;
  groups?: string[];
  noUserGroup?: boolean;
  noLogInit?: boolean;
  shell?: string;
  system?: boolean;
}

export interface GroupAction {
  kind: 'group';
  name: string;
  gid?: number;
  passwordHash?: string;
  system?: boolean;
}

export interface AuthorizedKeysAction {
  kind: 'authorized-keys';
  user: string;
  /** The key set's name: ~/.ssh/authorized_keys.d/NAME, merged into ~/.ssh/authorized_keys. */
  setName: string;
  keys: string[];
}

export interface UnitAction {
  kind: 'unit';
  name: string;
  /** Unit file contents; absent keeps the unit's existing file (only drop-ins, enable or mask). */
  contents?: string;
  dropIns?: { name: string; contents: string }[];
  /** /run/systemd/system instead of /etc/systemd/system. */
  runtime?: boolean;
  enable?: boolean;
  mask?: boolean;
  /** cloud-config `command`: start, stop, restart … after the daemon-reload, only on a live system. */
  command?: string;
  /**
   * Ignition's `enabled: true`: Ignition enables units before the real root boots, so an enabled unit
   * is part of that first boot. On a live apply (flotilla-ignition runs inside the boot), the unit is
   * started after the daemon-reload when one of the targets it was enabled into is active or being
   * started; a unit enabled into a target this boot does not reach only waits for that target.
   */
  bootStart?: boolean;
}

export interface HostnameAction {
  kind: 'hostname';
  hostname: string;
}

export type TargetAction =
  | FileAction
  | DirectoryAction
  | LinkAction
  | UserAction
  | GroupAction
  | AuthorizedKeysAction
  | UnitAction
  | HostnameAction;

/** An action and why it is in the plan (e.g. `write_files[2]`, `storage.files[0]`). */
export interface PlannedAction {
  action: TargetAction;
  reason: string;
}

export interface ApplyResult {
  /** Actions that changed the target. */
  changed: PlannedAction[];
  /** Actions that found the target already as planned. */
  unchanged: PlannedAction[];
}
