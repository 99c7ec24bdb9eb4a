// The single-executable experiment (scripts/package-sea.sh): dist/cli/main.js and its
// node_modules bundled into one CommonJS file for a Node SEA blob. Native addons and optional
// platform modules cannot be embedded and stay external (a SEA can require only built-ins).
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
export default {
  logLevel: 'warn',
  build: {
    ssr: `${root}dist/cli/main.js`,
    outDir: process.env.FLOTILLA_SEA_OUT,
    emptyOutDir: true,
    target: 'node22',
    rollupOptions: {
      external: [/\.node$/, 'node-pty', 'x11', 'usocket', 'abstract-socket'],
      output: { format: 'cjs', codeSplitting: false, entryFileNames: 'bundle.cjs' },
    },
  },
  ssr: { noExternal: true, target: 'node' },
};
