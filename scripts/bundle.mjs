// Bundle the compiled CLI (dist/src, from tsc) into dist/bin/ with esbuild: start-up then
// loads a handful of files instead of several hundred modules (0.32 s → 0.13 s for
// `--version` here). Heavy parts stay lazy: each dynamic import() becomes its own chunk.
// zstd-napi (a native addon) stays external; the zstd worker is an entry of its own, so
// `new URL('./zstd-worker.js', import.meta.url)` finds it beside the chunk that starts it.
import { build } from 'esbuild';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outdir = path.join(repo, 'dist', 'bin');
rmSync(outdir, { recursive: true, force: true });
const result = await build({
  entryPoints: [path.join(repo, 'dist/src/shell/cli/bin.js'), path.join(repo, 'dist/src/shell/fs/zstd-worker.js'), path.join(repo, 'dist/src/shell/fs/sink-worker.js')],
  outdir,
  entryNames: '[name]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: ['zstd-napi'],
  // CommonJS dependencies (undici, clipanion) call require(); give the ESM bundle one.
  banner: { js: "import { createRequire as __occystrapCreateRequire } from 'node:module'; const require = __occystrapCreateRequire(import.meta.url);" },
  logLevel: 'warning',
  metafile: true,
  legalComments: 'none',
  minifyWhitespace: true,
  minifySyntax: true,
});

if (process.env.BUNDLE_META) (await import('node:fs')).writeFileSync(process.env.BUNDLE_META, JSON.stringify(result.metafile));
