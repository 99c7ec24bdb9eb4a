/**
 * The server side of RFC 6455 WebSocket, as much as the dashboard's terminal needs: the opening
 * handshake, text/binary messages (fragmented or not), ping/pong and close. No extensions
 * (permessage-deflate is never negotiated), no subprotocols.
 *
 * Client frames must be masked (RFC 6455 §5.1); an unmasked frame, a reserved bit, an unknown
 * opcode or a message larger than `maxMessage` closes the connection with 1002/1009.
 */
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** Sec-WebSocket-Accept for a Sec-WebSocket-Key. */
export function acceptKey(key: string): string {
  return createHash('sha1')
    .update(key + GUID)
    .digest('base64');
}

/** Undefined when `req` is a valid WebSocket opening handshake, else why not. */
export function handshakeProblem(req: IncomingMessage): string | undefined {
  if ((req.headers.upgrade ?? '').toLowerCase() !== 'websocket') return 'Upgrade: websocket expected';
  if (req.headers['sec-websocket-version'] !== '13') return 'Sec-WebSocket-Version: 13 expected';
  const key = req.headers['sec-websocket-key'];
  if (typeof key !== 'string' || Buffer.from(key, 'base64').length !== 16)
    return 'Sec-WebSocket-Key: 16 base64-encoded bytes expected';
  return undefined;
}

/** One frame, server to client (never masked). */
export function encodeFrame(opcode: number, payload: Buffer): Buffer {
  const n = payload.length;
  const head = n < 126 ? Buffer.alloc(2) : n < 65536 ? Buffer.alloc(4) : Buffer.alloc(10);
  head[0] = 0x80 | opcode;
  if (n < 126) head[1] = n;
  else if (n < 65536) {
    head[1] = 126;
    head.writeUInt16BE(n, 2);
  } else {
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(n), 2);
  }
  return Buffer.concat([head, payload]);
}

export interface WebSocketEvents {
  message: [data: Buffer, binary: boolean];
  close: [code: number, reason: string];
}

/** An accepted WebSocket over `sock`. */
export class WebSocketConn extends EventEmitter<WebSocketEvents> {
  private buf: Buffer = Buffer.alloc(0);
  private parts: Buffer[] = [];
  private partsLen = 0;
  private partBinary = false;
  private closed = false;

  constructor(
    private readonly sock: Duplex,
    private readonly maxMessage = 64 * 1024,
  ) {
    super();
    sock.on('data', (c: Buffer) => this.onData(c));
    sock.on('close', () => this.finish(1006, 'connection lost'));
    sock.on('error', () => this.finish(1006, 'connection error'));
  }

  /** Complete the handshake on `sock` (after handshakeProblem said it is fine). */
  static accept(req: IncomingMessage, sock: Duplex, head: Buffer, maxMessage?: number): WebSocketConn {
    sock.write(
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        `Sec-WebSocket-Accept: ${acceptKey(String(req.headers['sec-websocket-key']))}\r\n\r\n`,
    );
    const ws = new WebSocketConn(sock, maxMessage);
    if (head.length > 0) ws.onData(head);
    return ws;
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  send(data: string | Buffer): void {
    if (this.closed) return;
    const binary = typeof data !== 'string';
    this.sock.write(encodeFrame(binary ? 0x2 : 0x1, binary ? data : Buffer.from(data, 'utf8')));
  }

  /** Send a close frame (code, reason ≤ 123 bytes) and end the connection. */
  close(code = 1000, reason = ''): void {
    if (this.closed) return;
    const r = Buffer.from(reason, 'utf8').subarray(0, 123);
    const p = Buffer.alloc(2 + r.length);
    p.writeUInt16BE(code, 0);
    r.copy(p, 2);
    this.sock.write(encodeFrame(0x8, p));
    this.sock.end();
    this.finish(code, reason);
  }

  private finish(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.emit('close', code, reason);
  }

  private onData(chunk: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    while (!this.closed) {
      const b = this.buf;
      if (b.length < 2) return;
      const fin = (b[0]! & 0x80) !== 0;
      const rsv = b[0]! & 0x70;
      const opcode = b[0]! & 0x0f;
      const masked = (b[1]! & 0x80) !== 0;
      let len = b[1]! & 0x7f;
      let off = 2;
      if (len === 126) {
        if (b.length < 4) return;
        len = b.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (b.length < 10) return;
        const big = b.readBigUInt64BE(2);
        if (big > BigInt(this.maxMessage)) return this.close(1009, 'message too big');
        len = Number(big);
        off = 10;
      }
      if (rsv !== 0) return this.close(1002, 'reserved bits set');
      if (!masked) return this.close(1002, 'client frames must be masked');
      if (len > this.maxMessage) return this.close(1009, 'message too big');
      if (b.length < off + 4 + len) return;
      const mask = b.subarray(off, off + 4);
      const payload = Buffer.from(b.subarray(off + 4, off + 4 + len));
      for (let i = 0; i < payload.length; i++) payload[i]! ^= mask[i & 3]!;
      this.buf = b.subarray(off + 4 + len);
      this.onFrame(fin, opcode, payload);
    }
  }

  private onFrame(fin: boolean, opcode: number, payload: Buffer): void {
    switch (opcode) {
      case 0x0: // continuation
      case 0x1:
      case 0x2: {
        if (opcode !== 0 && this.parts.length > 0) return this.close(1002, 'unfinished fragmented message');
        if (opcode === 0 && this.parts.length === 0) return this.close(1002, 'continuation without a start');
        if (opcode !== 0) this.partBinary = opcode === 0x2;
        this.parts.push(payload);
        this.partsLen += payload.length;
        if (this.partsLen > this.maxMessage) return this.close(1009, 'message too big');
        if (!fin) return;
        const msg = Buffer.concat(this.parts);
        this.parts = [];
        this.partsLen = 0;
        this.emit('message', msg, this.partBinary);
        return;
      }
      case 0x8: {
        const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
        return this.close(code === 1005 ? 1000 : code, payload.subarray(2).toString('utf8'));
      }
      case 0x9:
        if (!this.closed) this.sock.write(encodeFrame(0xa, payload));
        return;
      case 0xa:
        return;
      default:
        return this.close(1002, `unknown opcode ${opcode}`);
    }
  }
}
