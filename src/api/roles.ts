/**
 * Who is calling the API, and what they may do (authorisation on top of mutual TLS).
 *
 * A client certificate carries its roles in a SAN URI `urn:flotilla:role:<role>` or in the subject's
 * OU (`OU=<role>`); several may be given. The roles:
 *   - `operator`: everything (what fleetctl needs: submit, start, stop, destroy, metadata, …);
 *   - `viewer`: read only: GET/HEAD of every resource, including `status` and `journal` of units in
 *     the registry, the events stream and /metrics; no PUT, POST, PATCH or DELETE;
 *   - `agent`: another agent: read only like `viewer`, and the only role whose
 *     `X-Flotilla-Forwarded` header is honoured (a forwarded status/journal request is run here,
 *     for a unit that must still be in the registry).
 * A certificate signed by `api_cafile` with none of these roles is refused (403). The unix socket is
 * root only (mode 0600) and acts as `operator`; it never honours `X-Flotilla-Forwarded`.
 */
import type { PeerCertificate } from 'node:tls';

export const ROLES = ['operator', 'agent', 'viewer'] as const;
export type Role = (typeof ROLES)[number];

export const ROLE_URI_PREFIX = 'urn:flotilla:role:';

/** The roles a (verified) client certificate carries: SAN URIs and subject OUs, unknown ones ignored. */
export function certRoles(cert: Pick<PeerCertificate, 'subject' | 'subjectaltname'> | undefined): Set<Role> {
  const out = new Set<Role>();
  if (!cert) return out;
  const add = (v: string) => {
    if ((ROLES as readonly string[]).includes(v)) out.add(v as Role);
  };
  for (const part of (cert.subjectaltname ?? '').split(',')) {
    const p = part.trim();
    if (p.startsWith(`URI:${ROLE_URI_PREFIX}`)) add(p.slice(4 + ROLE_URI_PREFIX.length));
  }
  const ou = (cert.subject as Record<string, string | string[] | undefined> | undefined)?.OU;
  for (const v of Array.isArray(ou) ? ou : ou !== undefined ? [ou] : []) add(v);
  return out;
}

const READ_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** POSTs that only read: the batch get (a POST only because a thousand names do not fit a URL). */
const READ_POSTS = new Set(['/flotilla/v1/units/get']);

/**
 * Undefined when `roles` may make this request, else the 403 message. The method decides (every
 * mutation in the API is PUT, POST, PATCH or DELETE), except for the read-only POSTs above.
 */
export function refusal(roles: ReadonlySet<Role>, method: string, path = ''): string | undefined {
  if (roles.size === 0) {
    return `client certificate has no flotilla role (a SAN URI ${ROLE_URI_PREFIX}operator|agent|viewer or OU=operator|agent|viewer)`;
  }
  if (roles.has('operator')) return undefined;
  if (READ_METHODS.has(method.toUpperCase())) return undefined;
  if (method.toUpperCase() === 'POST' && READ_POSTS.has(path)) return undefined;
  return `role ${[...roles].join(',')} may only read (GET); ${method} needs the operator role`;
}
