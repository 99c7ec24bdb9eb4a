/**
 * Credentials out of what is shown: light (no dependency), so config parsing and logging can use it
 * without loading the etcd client.
 */

/** A URL with any password replaced by `***` (for logs and errors). Non-URLs pass unchanged. */
export function redactUrl(s: string): string {
  try {
    const u = new URL(s);
    if (u.password === '') return s;
    u.password = '***';
    return u.toString().replace(/\/$/, s.endsWith('/') ? '/' : '');
  } catch {
    return s.replace(/\/\/([^/@:]*):[^/@]*@/, '//$1:***@');
  }
}
