// RSS of a fresh node after importing the given modules (for the README breakdown, issue 18):
// `node --expose-gc bench/rss-probe.mjs MODULE...`; prints one JSON line and the /proc RSS fields.
// usage: node --expose-gc modrss.mjs spec...   prints rss MiB after loading specs, gc, settle
const specs = process.argv.slice(2);
const t0 = performance.now();
for (const s of specs) {
  const m = await import(s);
  if (s.includes('slim.js')) m.slimDockerode();
}
const t = performance.now() - t0;
await new Promise((r) => setTimeout(r, 300));
globalThis.gc();
globalThis.gc();
await new Promise((r) => setTimeout(r, 300));
const mu = process.memoryUsage();
console.log('heapTotal', mu.heapTotal / 1048576, JSON.stringify(process.memoryUsage()));
console.log(
  JSON.stringify({ rss: mu.rss / 1048576, heap: mu.heapUsed / 1048576, ext: mu.external / 1048576, ms: t }),
);
const st = (await import('node:fs')).readFileSync('/proc/self/status', 'utf8');
console.log(
  st
    .split('\n')
    .filter((l) => /^(VmRSS|RssAnon|RssFile|RssShmem)/.test(l))
    .join(' '),
);
