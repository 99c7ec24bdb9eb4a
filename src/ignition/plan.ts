/**
 * The Ignition planner (pure): a validated, rendered 3.x config plus the fetched contents of its
 * files (resources.ts `resolveContents`) → the target actions, each with its reason
 * (`storage.files[0] /etc/foo`). No I/O, no clock; the executor (src/target/apply.ts) does the rest.
 *
 * Order, as Ignition's files stage: groups, users and their keys (so owners by name resolve),
 * then directories, files and links by path depth (parents first, config order otherwise), then
 * units. Semantics (spec 3.x):
 * - files: mode default 0644; `overwrite` default false → written only if absent; `append`
 *   fragments are appended after the contents; no contents → an empty file if absent;
 * - directories: mode default 0755; links: soft unless `hard`;
 * - user/group by id or name (id wins, as Ignition prefers it);
 * - units: `enabled` true/false → enable/disable, absent leaves it; `mask`; contents; drop-ins
 *   with contents (one without contents has nothing to write and is skipped);
 * - users: every field; `sshAuthorizedKeys` → the `ignition` key set
 *   (~/.ssh/authorized_keys.d/ignition).
 */
import type {
  DirectoryAction,
  FileAction,
  GroupAction,
  LinkAction,
  PlannedAction,
  UnitAction,
  UserAction,
} from '../target/types.js';
import type { IgnitionConfig, NodeOwner, StorageNode } from './types.js';

export const DEFAULT_FILE_MODE = 0o644;
export const DEFAULT_DIR_MODE = 0o755;
export const KEY_SET_NAME = 'ignition';

function ownerOf(n: StorageNode): { owner?: { user?: string | number; group?: string | number } } {
  const pick = (o: NodeOwner | undefined): string | number | undefined => o?.id ?? o?.name ?? undefined;
  const user = pick(n.user);
  const group = pick(n.group);
  if (user === undefined && group === undefined) return {};
  return { owner: { ...(user !== undefined ? { user } : {}), ...(group !== undefined ? { group } : {}) } };
}

function depth(path: string): number {
  return path.split('/').filter((s) => s !== '').length;
}

function set<T extends object, K extends keyof T>(o: T, k: K, v: T[K] | null | undefined): void {
  if (v !== undefined && v !== null) o[k] = v;
}

/** Plan `cfg`. `contents` maps `storage.files[I].contents` / `.append[J]` to the fetched bytes. */
export function planIgnition(cfg: IgnitionConfig, contents: ReadonlyMap<string, Buffer>): PlannedAction[] {
  const plan: PlannedAction[] = [];

  (cfg.passwd?.groups ?? []).forEach((g, i) => {
    const action: GroupAction = { kind: 'group', name: g.name };
    set(action, 'gid', g.gid);
    set(action, 'passwordHash', g.passwordHash);
    set(action, 'system', g.system);
    plan.push({ action, reason: `passwd.groups[${i}] ${g.name}` });
  });
  (cfg.passwd?.users ?? []).forEach((u, i) => {
    const action: UserAction = { kind: 'user', name: u.name };
    set(action, 'passwordHash', u.passwordHash);
    set(action, 'uid', u.uid);
    set(action, 'gecos', u.gecos);
    set(action, 'homeDir', u.homeDir);
    set(action, 'noCreateHome', u.noCreateHome);
    set(action, 'primaryGroup', u.primaryGroup);
    if (u.groups?.length) action.groups = [...u.groups];
    set(action, 'noUserGroup', u.noUserGroup);
    set(action, 'noLogInit', u.noLogInit);
    set(action, 'shell', u.shell);
    set(action, 'system', u.system);
    plan.push({ action, reason: `passwd.users[${i}] ${u.name}` });
    if (u.sshAuthorizedKeys?.length) {
      plan.push({
        action: {
          kind: 'authorized-keys',
          user: u.name,
          setName: KEY_SET_NAME,
          keys: [...u.sshAuthorizedKeys],
        },
        reason: `passwd.users[${i}].sshAuthorizedKeys ${u.name}`,
      });
    }
  });

  const nodes: { path: string; order: number; items: PlannedAction[] }[] = [];
  (cfg.storage?.directories ?? []).forEach((d, i) => {
    const action: DirectoryAction = {
      kind: 'directory',
      path: d.path,
      mode: d.mode ?? DEFAULT_DIR_MODE,
      ...ownerOf(d),
    };
    nodes.push({
      path: d.path,
      order: nodes.length,
      items: [{ action, reason: `storage.directories[${i}] ${d.path}` }],
    });
  });
  (cfg.storage?.files ?? []).forEach((f, i) => {
    const reason = `storage.files[${i}] ${f.path}`;
    const base = { kind: 'file' as const, path: f.path, mode: f.mode ?? DEFAULT_FILE_MODE, ...ownerOf(f) };
    const items: PlannedAction[] = [];
    const overwrite = f.overwrite === true;
    const body = contents.get(`storage.files[${i}].contents`);
    const appends = f.append ?? [];
    if (body !== undefined || appends.length === 0) {
      const action: FileAction = { ...base, contents: body ?? Buffer.alloc(0) };
      if (!overwrite) action.onlyIfAbsent = true;
      items.push({ action, reason });
    }
    appends.forEach((_a, j) => {
      const data = contents.get(`storage.files[${i}].append[${j}]`) ?? Buffer.alloc(0);
      items.push({ action: { ...base, contents: data, append: true }, reason: `${reason} append[${j}]` });
    });
    nodes.push({ path: f.path, order: nodes.length, items });
  });
  (cfg.storage?.links ?? []).forEach((l, i) => {
    const action: LinkAction = {
      kind: 'link',
      path: l.path,
      target: l.target ?? '',
      hard: l.hard === true,
      ...ownerOf(l),
    };
    nodes.push({
      path: l.path,
      order: nodes.length,
      items: [{ action, reason: `storage.links[${i}] ${l.path}` }],
    });
  });
  nodes.sort((a, b) => depth(a.path) - depth(b.path) || a.order - b.order);
  for (const n of nodes) plan.push(...n.items);

  (cfg.systemd?.units ?? []).forEach((u, i) => {
    const action: UnitAction = { kind: 'unit', name: u.name };
    set(action, 'contents', u.contents);
    const dropIns = (u.dropins ?? [])
      .filter((d) => d.contents !== undefined && d.contents !== null)
      .map((d) => ({ name: d.name, contents: d.contents! }));
    if (dropIns.length) action.dropIns = dropIns;
    set(action, 'enable', u.enabled);
    if (u.enabled === true) action.bootStart = true;
    set(action, 'mask', u.mask);
    plan.push({ action, reason: `systemd.units[${i}] ${u.name}` });
  });
  return plan;
}
