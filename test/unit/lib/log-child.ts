/** Child of log.test.ts: the real logger on fd 2, fed lines that carry URL credentials. */
import { createLogger } from '../../../src/lib/log.js';
import { openRegistry } from '../../../src/daemon/open-store.js';
import { DEFAULTS } from '../../../src/daemon/config.js';

const pw = process.argv[2]!;
const log = createLogger({ journald: process.argv[3] === 'journald' });
log.info({ url: `http://root:${pw}@127.0.0.1:1` }, `dialing https://root:${pw}@10.0.0.1:2379/v3`);
const { store } = await openRegistry(
  { ...DEFAULTS, etcdServers: [`http://root:${pw}@127.0.0.1:9`, `http://root:${pw}@127.0.0.2:9`] },
  new Set(),
  log,
);
await store.close();
