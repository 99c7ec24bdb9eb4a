/**
 * A tiny HTTP layer for the agent's API: a request/response shape that handlers return (so tests can
 * call them without a socket, fastify-inject style), fleet's error body `{"error":{"code","message"}}`,
 * and the mapping from the error catalogue to HTTP statuses.
 *
 * Content-Type rules (fleet's): a JSON body is `application/json`; a response without a body has no
 * Content-Type unless the handler sets one (fleet's PATCH 204 does). Streams (events, journal) carry
 * the type the handler sets, and their headers are flushed at once, before the first chunk.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { FlotillaError } from '../lib/errors.js';
import type { Role } from './roles.js';
import { VERSION } from '../version.js';

export interface ApiRequest {
  method: string;
  /** Path without the query string, percent-decoded per segment by the router. */
  path: string;
  query: URLSearchParams;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** Aborted when the client goes away (streams and child processes stop then). */
  signal?: AbortSignal;
  /**
   * The caller's roles (src/api/roles.ts): from its client certificate on the mTLS listener;
   * `operator` on the root-only unix socket. Undefined = a direct call in-process (tests): operator.
   */
  roles?: ReadonlySet<Role>;
}

export interface ApiResponse {
  status: number;
  /** JSON body (a string is sent as is, as text/plain unless headers say otherwise); undefined = no body. */
  body?: unknown;
  headers?: Record<string, string>;
  /** A streaming body (events, logs): written as it comes, the response ends when it ends. */
  stream?: AsyncIterable<string | Uint8Array>;
}

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers?: Record<string, string>,
  ) {
    super(message);
  }
}

/** 405 with an Allow header, in fleet's words: `only GET, PUT and DELETE supported against this resource`. */
export function methodNotAllowed(methods: readonly string[]): HttpError {
  const list =
    methods.length > 1 ? `${methods.slice(0, -1).join(', ')} and ${methods[methods.length - 1]}` : methods[0];
  return new HttpError(405, `only ${list} supported against this resource`, { Allow: methods.join(', ') });
}

export function errorBody(status: number, message: string, headers?: Record<string, string>): ApiResponse {
  const r: ApiResponse = { status, body: { error: { code: status, message } } };
  if (headers) r.headers = headers;
  return r;
}

export const REGISTRY_DOWN = 'fleet server unable to communicate with etcd';

/** Map any thrown error to a response. 500s never leak internals (fleet sends an empty message). */
export function toErrorResponse(err: unknown): ApiResponse {
  if (err instanceof HttpError) return errorBody(err.status, err.message, err.headers);
  if (err instanceof FlotillaError) {
    if (err.code === 'E_REGISTRY_UNAVAILABLE' || err.code === 'E_CLOSED') {
      return errorBody(503, REGISTRY_DOWN);
    }
    const status = err.httpStatus;
    return errorBody(status, status >= 500 ? '' : err.message);
  }
  return errorBody(500, '');
}

export const MAX_BODY = 2 * 1024 * 1024;

export function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new HttpError(413, `request body too large (max ${MAX_BODY} bytes)`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** Resolves on 'drain' or when the response is gone, whichever comes first. */
function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.once('drain', done);
    res.once('close', done);
  });
}

/** Write an ApiResponse to a node response. */
export async function send(res: ServerResponse, r: ApiResponse): Promise<void> {
  const headers: Record<string, string> = { Server: `flotilla/${VERSION}`, ...(r.headers ?? {}) };
  if (r.stream) {
    res.writeHead(r.status, { 'Content-Type': 'application/x-ndjson', ...headers });
    res.flushHeaders();
    // A stream may be quiet for long (journal -f of a quiet unit): no idle timeout for it. Its
    // memory is bounded by backpressure/backlog limits, its count by the listener's maxConnections.
    res.socket?.setTimeout(0);
    try {
      for await (const chunk of r.stream) {
        if (res.destroyed) break;
        if (!res.write(chunk)) await drained(res);
        if (res.destroyed) break;
      }
    } catch {
      // The producer failed after the status was sent: cut the response short (no final chunk),
      // so the client sees an error instead of a clean end.
      res.destroy();
      return;
    }
    res.end();
    return;
  }
  if (r.body === undefined) {
    res.writeHead(r.status, headers);
    res.end();
    return;
  }
  const isText = typeof r.body === 'string';
  const text = isText ? (r.body as string) : JSON.stringify(r.body);
  res.writeHead(r.status, {
    'Content-Type': isText ? 'text/plain; charset=utf-8' : 'application/json',
    ...headers,
  });
  res.end(text);
}

export function parseJson(req: ApiRequest): unknown {
  const ct = req.headers['content-type'];
  if (typeof ct !== 'string' || ct.split(';')[0]!.trim().toLowerCase() !== 'application/json') {
    throw new HttpError(415, 'only acceptable Content-Type is application/json');
  }
  return decodeJson(req);
}

/** The body as JSON, whatever its Content-Type (fleet's PATCH does not check it). */
export function decodeJson(req: ApiRequest): unknown {
  try {
    return JSON.parse(req.body.toString('utf8')) as unknown;
  } catch (err) {
    throw new HttpError(400, `unable to decode body: ${(err as Error).message}`);
  }
}

/** A percent-encoded path segment (a unit name); malformed encoding is a 400, not a 500. */
export function decodeSegment(seg: string): string {
  try {
    return decodeURIComponent(seg);
  } catch {
    throw new HttpError(400, `invalid percent-encoding in path: ${JSON.stringify(seg)}`);
  }
}
