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
  // optional native add-ons (cpu-features, ssh2's sshcrypto) that ssh2 loads inside try/catch
  external: ['cpu-features', '*.node'],
  // CommonJS dependencies bundled into ESM still expect require, __filename and __dirname
  banner: {
    js: [
      "import { createRequire as __berthCreateRequire } from 'node:module';",
      "import { fileURLToPath as __berthFileURLToPath } from 'node:url';",
      "import { dirname as __berthDirname } from 'node:path';",
      'const require = __berthCreateRequire(import.meta.url);',
      'const __berthFilename = __berthFileURLToPath(import.meta.url);',
      'const __berthDir = __berthDirname(__berthFilename);',
    ].join(' '),
  },
  // only free (global) uses are replaced; modules that declare their own keep them
  define: { __dirname: '__berthDir', __filename: '__berthFilename' },
  legalComments: 'none',
  logLevel: 'warning',
});
console.log('bundle: dist/berth.js dist/berthd.js');
