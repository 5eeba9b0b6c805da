// Bundles the CLI and the agent into dist/ with esbuild: one file each plus shared chunks,
// so that what slurmd runs per job loads only the code its path needs.
import { build } from 'esbuild';
import { rmSync } from 'node:fs';

rmSync('dist', { recursive: true, force: true });
await build({
  entryPoints: { berth: 'services/cli/main.ts', berthd: 'services/agent/main.ts' },
  outdir: 'dist',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  chunkNames: 'chunks/[name]-[hash]',
  external: ['ssh2', 'cpu-features'],
  banner: { js: "import { createRequire as __berthCreateRequire } from 'node:module'; const require = __berthCreateRequire(import.meta.url);" },
  legalComments: 'none',
  logLevel: 'warning',
});
console.log('bundle: dist/berth.js dist/berthd.js');
