/**
 * Dashboard login: one-time tokens handed over through a root-only directory, sessions in memory,
 * CSRF tokens, and roles (viewer reads, operator also changes).
 *
 * A token is 32 random bytes (base64url). `flotilla dashboard login-url` writes a file named by the
 * token's SHA-256 into `<data_dir>/dashboard/tokens/` (dir 0700, file 0600, atomically); the file
 * holds the role and the expiry, never the token. Exchanging claims the file by renaming it (only
 * one exchange can win) and deletes it: the token works once. The token itself is never written to
 * disk or to a log; the URL carries it in the fragment (`#token=`), which browsers do not send in
 * requests or Referer headers.
 *
 * INVARIANTS: sessions are bounded (oldest evicted); CSRF tokens compare in constant time.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { FlotillaError } from '../lib/errors.js';

export type Role = 'viewer' | 'operator';
export const ROLES: readonly Role[] = ['viewer', 'operator'];

export function tokenDir(dataDir: string): string {
  return join(dataDir, 'dashboard', 'tokens');
}

const hashOf = (token: string) => createHash('sha256').update(token).digest('hex');

/** Create a one-time token for `role`, valid `ttlSec` seconds; returns the token. */
export function issueToken(dataDir: string, role: Role, ttlSec: number, now = Date.now()): string {
  if (!ROLES.includes(role))
    throw new FlotillaError('E_USAGE', `--role: ${JSON.stringify(role)} is not viewer or operator`);
  if (!(ttlSec > 0)) throw new FlotillaError('E_USAGE', '--ttl: must be a positive number of seconds');
  const dir = tokenDir(dataDir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const token = randomBytes(32).toString('base64url');
  const final = join(dir, hashOf(token));
  const tmp = `${final}.tmp`;
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, JSON.stringify({ role, expires: now + ttlSec * 1000 }));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, final);
  const dfd = openSync(dir, 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
  return token;
}

/** Claim a token: its role, or undefined when unknown, used or expired. */
export function redeemToken(dataDir: string, token: string, now = Date.now()): Role | undefined {
  if (!/^[A-Za-z0-9_-]{43}$/.test(token)) return undefined;
  const path = join(tokenDir(dataDir), hashOf(token));
  const claimed = `${path}.claimed-${randomBytes(6).toString('hex')}`;
  try {
    renameSync(path, claimed);
  } catch {
    return undefined;
  }
  try {
    const o = JSON.parse(readFileSync(claimed, 'utf8')) as { role?: unknown; expires?: unknown };
    if (typeof o.expires !== 'number' || o.expires <= now) return undefined;
    return ROLES.includes(o.role as Role) ? (o.role as Role) : undefined;
  } catch {
    return undefined;
  } finally {
    rmSync(claimed, { force: true });
  }
}

export interface Session {
  id: string;
  role: Role;
  csrf: string;
  expires: number;
  /** Who: `token` or the client certificate's subject. */
  who: string;
}

export function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export class Sessions {
  private readonly map = new Map<string, Session>();
  private readonly secret = randomBytes(32);

  constructor(
    private readonly ttlMs = 8 * 3600_000,
    private readonly max = 1000,
  ) {}

  create(role: Role, who: string, now = Date.now()): Session {
    while (this.map.size >= this.max) this.map.delete(this.map.keys().next().value!);
    const s: Session = {
      id: randomBytes(32).toString('base64url'),
      role,
      csrf: randomBytes(24).toString('base64url'),
      expires: now + this.ttlMs,
      who,
    };
    this.map.set(s.id, s);
    return s;
  }

  get(id: string | undefined, now = Date.now()): Session | undefined {
    if (!id) return undefined;
    const s = this.map.get(id);
    if (!s) return undefined;
    if (s.expires <= now) {
      this.map.delete(id);
      return undefined;
    }
    return s;
  }

  /** A stateless session for a verified client certificate: operator, CSRF bound to its fingerprint. */
  forCertificate(fingerprint: string, subject: string): Session {
    const csrf = createHmac('sha256', this.secret).update(`cert:${fingerprint}`).digest('base64url');
    return { id: '', role: 'operator', csrf, expires: Infinity, who: `cert ${subject}` };
  }

  delete(id: string): void {
    this.map.delete(id);
  }

  /** Drop every session (tests; an expired-session check). */
  expireAll(): void {
    this.map.clear();
  }

  get size(): number {
    return this.map.size;
  }
}

/** The session id from a Cookie header. */
export function sessionCookie(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}
