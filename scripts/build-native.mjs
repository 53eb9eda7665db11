// Compile native/isal-gzip.c (occystrap's fast gzip, on Intel's ISA-L) into
// dist/native/isal-gzip.node with the C compiler and Node's own headers. Optional: when
// the compiler, Node's headers or Debian's libisal-dev are missing it says so in one line
// and occystrap compresses with node:zlib (src/shell/fs/gzip-engine.ts). A compiler error
// with everything present is a failure.
//
//   node scripts/build-native.mjs
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const source = path.join(repo, 'native', 'isal-gzip.c');
const outDir = path.join(repo, 'dist', 'native');
const out = path.join(outDir, 'isal-gzip.node');

const skip = (why) => {
  console.log(`build-native: ISA-L gzip not built (${why}); layers are gzip-compressed with node:zlib`);
  process.exit(0);
};

const cc = process.env.CC || 'cc';
if (spawnSync(cc, ['--version'], { stdio: 'ignore' }).status !== 0) skip(`no C compiler: ${cc}`);
// Node's headers: beside this node (…/bin/node → …/include/node), else npm's nodedir.
const headerDirs = [path.join(path.dirname(process.execPath), '..', 'include', 'node'), process.env.npm_config_nodedir && path.join(process.env.npm_config_nodedir, 'include', 'node')].filter(Boolean);
const headers = headerDirs.find((dir) => existsSync(path.join(dir, 'node_api.h')));
if (!headers) skip(`no node_api.h in ${headerDirs.join(' or ')}`);
const probe = spawnSync(cc, ['-E', '-x', 'c', '-'], { input: '#include <isa-l/igzip_lib.h>\n', stdio: ['pipe', 'ignore', 'ignore'] });
if (probe.status !== 0) skip('no <isa-l/igzip_lib.h>: apt-get install libisal-dev');

mkdirSync(outDir, { recursive: true });
const args = ['-O2', '-shared', '-fPIC', '-Wall', '-Wextra', '-Werror', '-DNODE_GYP_MODULE_NAME=isal_gzip', `-I${headers}`, source, '-lisal', '-o', `${out}.tmp`];
const result = spawnSync(cc, args, { stdio: 'inherit' });
if (result.status !== 0) {
  console.error(`build-native: ${cc} ${args.join(' ')} failed (exit ${result.status})`);
  process.exit(1);
}
renameSync(`${out}.tmp`, out);
