/**
 * Docker image references, validated with the grammar of distribution/reference
 * (`[domain[:port]/]path[/path...][:tag][@digest]`), so that nothing but a well-formed reference
 * ever reaches dockerd. Pure.
 */

const ALNUM = '[a-z0-9]+';
const SEPARATOR = '(?:[._]|__|[-]+)';
const PATH_COMPONENT = `${ALNUM}(?:${SEPARATOR}${ALNUM})*`;
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const IPV6 = '\\[(?:[a-fA-F0-9:]+)\\]';
const DOMAIN = `(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|${IPV6})(?::[0-9]+)?`;
const TAG = '[\\w][\\w.-]{0,127}';
const DIGEST = '[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}';
const NAME = `(?:${DOMAIN}/)?${PATH_COMPONENT}(?:/${PATH_COMPONENT})*`;

const REFERENCE = new RegExp(`^(${NAME})(?::(${TAG}))?(?:@(${DIGEST}))?$`);
/** Longest repository name Docker accepts. */
export const NAME_MAX = 255;

export interface ImageReference {
  /** Repository name as written (domain included if given). */
  name: string;
  tag?: string;
  digest?: string;
}

/** Parse `ref`; undefined with `why` set when it is not a valid reference. */
export function parseImageReference(ref: string): { ok: ImageReference } | { why: string } {
  if (ref === '') return { why: 'is empty' };
  if (ref.length > 512) return { why: 'is longer than 512 characters' };
  // Say what is wrong in the most common cases before the generic message.
  const bad = /[^A-Za-z0-9._:/@[\]-]/.exec(ref);
  if (bad) {
    const ch = bad[0];
    const shown = /\s/.test(ch) ? 'whitespace' : JSON.stringify(ch);
    return { why: `contains ${shown}, which is not allowed in an image reference` };
  }
  const m = REFERENCE.exec(ref);
  if (!m) {
    if (/[A-Z]/.test(ref.split('@')[0]!.split(':')[0]!.split('/').slice(-1)[0]!))
      return { why: 'repository names must be lowercase' };
    return { why: 'is not a valid image reference ([registry/]name[:tag][@digest])' };
  }
  const name = m[1]!;
  if (name.length > NAME_MAX) return { why: `repository name is longer than ${NAME_MAX} characters` };
  const out: ImageReference = { name };
  if (m[2] !== undefined) out.tag = m[2];
  if (m[3] !== undefined) out.digest = m[3];
  return { ok: out };
}

export function isValidImageReference(ref: string): boolean {
  return 'ok' in parseImageReference(ref);
}

/**
 * The reference Docker stores a pull under: the tag defaults to `latest` unless a digest is given.
 * (`busybox` → `busybox:latest`; `127.0.0.1:5000/app` → `127.0.0.1:5000/app:latest`.)
 */
export function normalizeImageReference(ref: string): string {
  const p = parseImageReference(ref);
  if (!('ok' in p)) return ref;
  if (p.ok.tag !== undefined || p.ok.digest !== undefined) return ref;
  return `${ref}:latest`;
}
