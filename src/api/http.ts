/**
 * A tiny HTTP layer for the agent's API: a request/response shape that handlers return (so tests can
 * call them without a socket, fastify-inject style), fleet's error body `{"error":{"code","message"}}`,
 * and the mapping from the error catalogue to HTTP statuses.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { FlotillaError } from '../lib/errors.js';
import { VERSION } from '../version.js';

export interface ApiRequest {
  method: string;
  /** Path without the query string, percent-decoded per segment by the router. */
  path: string;
  query: URLSearchParams;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export interface ApiResponse {
  status: number;
  /** JSON body; undefined = no body. */
  body?: unknown;
  headers?: Record<string, string>;
  /** A streaming body (events, logs): written as it comes, the response ends when it ends. */
  stream?: AsyncIterable<string>;
}

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export function errorBody(status: number, message: string): ApiResponse {
  return { status, body: { error: { code: status, message } } };
}

/** Map any thrown error to a response. 500s never leak internals (fleet sends an empty message). */
export function toErrorResponse(err: unknown): ApiResponse {
  if (err instanceof HttpError) return errorBody(err.status, err.message);
  if (err instanceof FlotillaError) {
    if (err.code === 'E_REGISTRY_UNAVAILABLE' || err.code === 'E_CLOSED') {
      return errorBody(503, 'fleet server unable to communicate with etcd');
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

/** Write an ApiResponse to a node response. */
export async function send(res: ServerResponse, r: ApiResponse): Promise<void> {
  const headers: Record<string, string> = { Server: `flotilla/${VERSION}`, ...(r.headers ?? {}) };
  if (r.stream) {
    res.writeHead(r.status, { 'Content-Type': 'application/x-ndjson', ...headers });
    try {
      for await (const chunk of r.stream) {
        if (!res.write(chunk)) await new Promise((resolve) => res.once('drain', resolve));
        if (res.destroyed) break;
      }
    } finally {
      res.end();
    }
    return;
  }
  if (r.body === undefined) {
    res.writeHead(r.status, headers);
    res.end();
    return;
  }
  const text = r.body === null || typeof r.body !== 'string' ? JSON.stringify(r.body) : r.body;
  res.writeHead(r.status, {
    'Content-Type': typeof r.body === 'string' ? 'text/plain; version=0.0.4' : 'application/json',
    ...headers,
  });
  res.end(text);
}

export function parseJson(req: ApiRequest): unknown {
  const ct = req.headers['content-type'];
  if (typeof ct !== 'string' || ct.split(';')[0]!.trim().toLowerCase() !== 'application/json') {
    throw new HttpError(415, 'only acceptable Content-Type is application/json');
  }
  try {
    return JSON.parse(req.body.toString('utf8')) as unknown;
  } catch (err) {
    throw new HttpError(400, `unable to decode body: ${(err as Error).message}`);
  }
}
