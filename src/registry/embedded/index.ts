/** The embedded KvStore backend: see store.ts for the design and ../kv.ts for the contract. */
export { DEFAULT_DATA_DIR, EmbeddedKvStore } from './store.js';
export type { CompactionPhase } from './compaction.js';
export type { EmbeddedKvStoreOptions } from './store.js';
export type { TimeSource as Clock } from '../../lib/clock.js';
