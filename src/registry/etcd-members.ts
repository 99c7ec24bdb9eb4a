/**
 * The etcd cluster's other members as fallback endpoints. In CoreOS's own layout every agent names
 * only its local member (`etcd_servers=http://127.0.0.1:2379`); when that member is down or
 * removed, such an agent would lose the registry although the cluster has quorum, its lease would
 * run out and its units would start elsewhere while they keep running here. So, as etcd's own
 * clients do (clientv3 `Sync`), the agent asks the configured endpoints for etcd's member list when
 * it starts and adds the members' client URLs after the configured ones: they are used only when
 * every configured endpoint fails.
 *
 * Only URLs with the configured scheme are taken (a discovered endpoint never downgrades TLS); a
 * member on this machine is skipped when a configured endpoint is already on this machine (it is
 * the same member under another address). The list is kept in `<data_dir>/etcd-members.json`, so an
 * agent that starts while its local member is down still knows the others.
 */
import { readFileSync } from 'node:fs';

export interface MemberInfo {
  clientURLs: string[];
}

function hostOf(url: string): string | undefined {
  try {
    return new URL(url).hostname;
  } catch {
    return undefined;
  }
}

const isLoopback = (h: string) => h === 'localhost' || h.startsWith('127.') || h === '[::1]';

/**
 * Pure: the members' client URLs to add after `configured`, in member-list order, without
 * duplicates, other schemes, or this machine's member when one is configured already.
 */
export function extraEndpoints(
  configured: readonly string[],
  members: readonly MemberInfo[],
  local: ReadonlySet<string>,
): string[] {
  const scheme = new URL(configured[0]!).protocol;
  const key = (u: URL) => `${u.hostname}:${u.port || '2379'}`;
  const seen = new Set(configured.map((e) => key(new URL(e))));
  const onThis = (h: string) => local.has(h) || isLoopback(h);
  const localConfigured = configured.some((e) => onThis(hostOf(e) ?? ''));
  const out: string[] = [];
  for (const m of members) {
    for (const raw of m.clientURLs) {
      let u: URL;
      try {
        u = new URL(raw);
      } catch {
        continue;
      }
      if (u.protocol !== scheme || u.username !== '' || u.password !== '') continue;
      if (localConfigured && onThis(u.hostname)) continue;
      if (seen.has(key(u))) continue;
      seen.add(key(u));
      out.push(`${u.protocol}//${u.host}`);
    }
  }
  return out;
}

/** The endpoints last discovered (`etcd-members.json`), or [] when there is no valid file. */
export function readKnownMembers(path: string): string[] {
  try {
    const v = JSON.parse(readFileSync(path, 'utf8')) as unknown;
    if (Array.isArray(v) && v.every((x) => typeof x === 'string' && hostOf(x) !== undefined))
      return v as string[];
  } catch {
    /* none yet, or unreadable: discovery starts from the configured endpoints only */
  }
  return [];
}
