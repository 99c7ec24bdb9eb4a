// Dashboard assets: built by `npm run build` into dist/ui, served by the agent under /ui/ (no CDN).
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/ui/',
  build: { outDir: fileURLToPath(new URL('../../dist/ui', import.meta.url)), emptyOutDir: true },
  logLevel: 'warn',
});
