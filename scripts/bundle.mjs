// Bundles the CLI and the agent into dist/ with esbuild, as two separate builds: the agent
// as one file, the CLI split into chunks so that what slurmd and srun run per job and per
// task (hooks, exec) loads only the code its path needs, none of the agent's.
import { build } from 'esbuild';
import { cpSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

rmSync('dist', { recursive: true, force: true });
const common = {
  outdir: 'dist',
  bundle: true,
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
};
await build({ ...common, entryPoints: { berth: 'services/cli/main.ts' }, splitting: true });
// @grpc/reflection loads its own reflection.proto at run time from ../../proto beside its
// module; bundled, it finds it in dist/proto (installed beside berthd.js)
const reflectionProtos = {
  name: 'reflection-protos',
  setup(b) {
    b.onLoad({ filter: /@grpc[\\/]reflection[\\/]build[\\/]src[\\/]implementations[\\/]reflection-v1(alpha)?\.js$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      if (!text.includes("'../../proto/grpc/reflection/")) throw new Error(`${args.path}: @grpc/reflection no longer loads ../../proto; update scripts/bundle.mjs`);
      return { contents: text.replaceAll("'../../proto/grpc/reflection/", "'proto/grpc/reflection/"), loader: 'js' };
    });
  },
};
const reflectionDir = path.dirname(createRequire(import.meta.url).resolve('@grpc/reflection/package.json'));
cpSync(path.join(reflectionDir, 'build/proto/grpc/reflection'), 'dist/proto/grpc/reflection', { recursive: true });
// berthd keeps its whole source in its heap for as long as it runs (V8 compiles functions lazily
// and needs the text then): without whitespace and comments it is 2.4 MB instead of 3.5 MB, and
// pure ASCII, which V8 keeps one byte a character; a single non-ASCII character left in a comment
// (JSDoc survives esbuild's unminified output) made it two bytes a character, 7 MB in all.
// Identifiers stay as written, so stack traces keep their function names.
await build({ ...common, entryPoints: { berthd: 'services/agent/main.ts' }, splitting: false, minifyWhitespace: true, alias: { ssh2: './services/agent/docker/no-ssh.ts' }, plugins: [reflectionProtos] });
const nonAscii = readFileSync('dist/berthd.js', 'latin1').search(/[^\x00-\x7f]/);
if (nonAscii >= 0) throw new Error(`dist/berthd.js has a non-ASCII byte at ${nonAscii}: V8 would keep its source two bytes a character; esbuild's charset should have escaped it`);
console.log('bundle: dist/berth.js dist/berthd.js');
