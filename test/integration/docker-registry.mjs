#!/usr/bin/env node
/**
 * A minimal Docker registry (distribution API v2, read-only) for the container-unit tests: serves
 * one image, `NAME:TAG`, whose only layer is a root file system tar (the test environment's
 * busybox tar), so dockerd can really pull without any registry on the network. Blobs are sent in
 * chunks with a pause (`--chunk-ms`), so a pull takes long enough to watch its progress.
 *
 *   node docker-registry.mjs --listen 127.0.0.1:5000 --rootfs /path/rootfs.tar --name flotilla/app --tag 1 \
 *        [--chunk-ms 20] [--hang]
 *
 * `--hang`: accept connections and never answer (a registry that does not respond).
 * Prints `listening` on stdout when ready. Run it in a machine's network namespace
 * (`ip netns exec fl-mK ...`) so that the machine's dockerd reaches it on its own loopback.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { gzipSync } from 'node:zlib';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => {
    if (a.startsWith('--'))
      acc.push([a.slice(2), all[i + 1]?.startsWith('--') || all[i + 1] === undefined ? 'true' : all[i + 1]]);
    return acc;
  }, []),
);
const [host, port] = (args.listen ?? '127.0.0.1:5000').split(':');
const sha = (b) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

let blobs = new Map();
let manifest;
/** One more file in a tar archive (ustar header), so that each registry run serves a new layer. */
function withFile(tar, name, content) {
  let end = tar.length;
  while (end > 0 && tar[end - 1] === 0) end--;
  end = Math.ceil(end / 512) * 512;
  const body = Buffer.from(content);
  const h = Buffer.alloc(512);
  const put = (off, len, v) => h.write(v, off, len, 'ascii');
  put(0, 100, name);
  put(100, 8, '0000644\0');
  put(108, 8, '0000000\0');
  put(116, 8, '0000000\0');
  put(124, 12, `${body.length.toString(8).padStart(11, '0')}\0`);
  put(
    136,
    12,
    `${Math.floor(Date.now() / 1000)
      .toString(8)
      .padStart(11, '0')}\0`,
  );
  put(148, 8, '        ');
  put(156, 1, '0');
  put(257, 6, 'ustar\0');
  put(263, 2, '00');
  let sum = 0;
  for (const b of h) sum += b;
  put(148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
  const pad = Buffer.alloc((512 - (body.length % 512)) % 512);
  return Buffer.concat([tar.subarray(0, end), h, body, pad, Buffer.alloc(1024)]);
}

if (args.hang !== 'true') {
  // a file of its own: a layer the engine does not have yet (no "Already exists")
  const tar = withFile(
    readFileSync(args.rootfs),
    'etc/flotilla-test-registry',
    `${process.pid} ${Date.now()}\n`,
  );
  const layer = gzipSync(tar);
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: {
        Env: ['PATH=/usr/sbin:/usr/bin:/sbin:/bin'],
        Cmd: ['sh'],
        Labels: { 'flotilla.test': 'registry' },
      },
      rootfs: { type: 'layers', diff_ids: [sha(tar)] },
      history: [{ created_by: 'flotilla test registry' }],
    }),
  );
  blobs = new Map([
    [sha(layer), layer],
    [sha(config), config],
  ]);
  manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
      config: {
        mediaType: 'application/vnd.docker.container.image.v1+json',
        size: config.length,
        digest: sha(config),
      },
      layers: [
        {
          mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
          size: layer.length,
          digest: sha(layer),
        },
      ],
    }),
  );
}
const chunkMs = Number(args['chunk-ms'] ?? 0);
const name = args.name ?? 'flotilla/app';
const tag = args.tag ?? '1';

const server = createServer((req, res) => {
  if (args.hang === 'true') return; // never answer
  const url = new URL(req.url, 'http://x');
  const head = req.method === 'HEAD';
  res.setHeader('Docker-Distribution-API-Version', 'registry/2.0');
  const send = (status, type, body, digest) => {
    res.writeHead(status, {
      'Content-Type': type,
      'Content-Length': body.length,
      ...(digest ? { 'Docker-Content-Digest': digest } : {}),
    });
    if (head) return res.end();
    if (!chunkMs) return res.end(body);
    let off = 0;
    const step = () => {
      if (off >= body.length) return res.end();
      res.write(body.subarray(off, off + 64 * 1024));
      off += 64 * 1024;
      setTimeout(step, chunkMs);
    };
    step();
  };
  if (url.pathname === '/v2/' || url.pathname === '/v2')
    return send(200, 'application/json', Buffer.from('{}'));
  const m = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(url.pathname);
  if (m && m[1] === name && m[2] === 'manifests' && (m[3] === tag || m[3] === sha(manifest)))
    return send(200, 'application/vnd.docker.distribution.manifest.v2+json', manifest, sha(manifest));
  if (m && m[1] === name && m[2] === 'blobs' && blobs.has(m[3]))
    return send(200, 'application/octet-stream', blobs.get(m[3]), m[3]);
  const err = Buffer.from(
    JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'unknown', detail: url.pathname }] }),
  );
  return send(404, 'application/json', err);
});
server.listen(Number(port), host, () => process.stdout.write('listening\n'));
process.on('SIGTERM', () => {
  server.closeAllConnections?.();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 500).unref();
});
