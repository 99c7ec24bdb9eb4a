import { connect, createServer, type Socket } from 'node:net';
import { fork } from 'node:child_process';
const role = process.argv[2];
if (role === 'source') {
  const buf = Buffer.alloc(65536, 0x61);
  const srv = createServer((s) => {
    s.on('error', () => {});
    const pump = () => { while (!s.destroyed) { if (!s.write(buf)) return void s.once('drain', pump); } };
    pump();
  });
  srv.listen(0, '127.0.0.1', () => process.send!((srv.address() as any).port));
} else if (role === 'client') {
  const port = Number(process.argv[3]);
  let n = 0; const t0 = performance.now();
  const socks: Socket[] = [];
  for (let i = 0; i < 4; i++) { const s = connect(port, '127.0.0.1'); s.on('data', (d) => (n += d.length)); s.on('error', () => {}); socks.push(s); }
  setTimeout(() => { for (const s of socks) s.destroy(); process.send!({ bytes: n, secs: (performance.now() - t0) / 1000 }); process.exit(0); }, 2000);
} else {
  const src = fork(process.argv[1]!, ['source'], { execArgv: ['--import', 'tsx'] });
  const sport: number = await new Promise((r) => src.once('message', r as any));
  const modes: Record<string, (c: Socket, port: number) => void> = {
    pipe: (c, port) => { const u = connect({ port, host: '127.0.0.1' }); u.on('connect', () => { c.pipe(u); u.pipe(c); }); u.on('error', () => {}); },
    onread: (c, port) => {
      const big = Buffer.allocUnsafe(1 << 20);
      const u = connect({ port, host: '127.0.0.1', onread: { buffer: big, callback: (n: number, b: Buffer) => {
        if (!c.write(Buffer.from(b.subarray(0, n)))) { u.pause(); c.once('drain', () => u.resume()); }
        return true; } } } as any);
      u.on('connect', () => { c.pipe(u); });
      u.on('end', () => c.end());
      u.on('error', () => {});
    },
  };
  const ports: Record<string, number> = {};
  for (const [k, f] of Object.entries(modes)) {
    const srv = createServer((c) => { c.on('error', () => {}); f(c, sport); });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    ports[k] = (srv.address() as any).port;
  }
  for (let i = 0; i < 3; i++) for (const [k, p] of [['direct', sport], ...Object.entries(ports)] as [string, number][]) {
    const c0 = process.cpuUsage();
    const cl = fork(process.argv[1]!, ['client', String(p)], { execArgv: ['--import', 'tsx'] });
    const r: any = await new Promise((res) => cl.once('message', res));
    await new Promise((res) => cl.once('exit', res));
    const cu = process.cpuUsage(c0);
    console.log(k.padEnd(7), (r.bytes / r.secs / 2 ** 20).toFixed(0).padStart(5), 'MiB/s cpu ms/GiB', ((cu.user + cu.system) / 1000 / (r.bytes / 2 ** 30)).toFixed(0));
  }
  src.kill(); process.exit(0);
}
