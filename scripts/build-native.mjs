// Compile occystrap's two small N-API addons into dist/native/ with the C compiler and
// Node's own headers:
//
// - isal-gzip.node (native/isal-gzip.c): fast gzip on Intel's ISA-L; needs Debian's
//   libisal-dev. Without it occystrap compresses with node:zlib.
// - fsops.node (native/fsops.c): mknod, extended attributes and one-job small-file writes for the extracting outputs
//   (dir://?expand=true, oci://, mounts://); needs only libc. Without it those outputs
//   refuse a layer that holds a device, a FIFO or an xattr.
//
// Both are optional: a missing compiler, header or library is one line and no failure;
// a compiler error with everything present is a failure.
//
//   node scripts/build-native.mjs
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outDir = path.join(repo, 'dist', 'native');
const addons = [
  { name: 'isal-gzip', header: 'isa-l/igzip_lib.h', libs: ['-lisal'], without: 'layers are gzip-compressed with node:zlib', install: 'apt-get install libisal-dev' },
  { name: 'fsops', header: 'sys/xattr.h', libs: ['-lm'], without: 'extraction refuses devices, FIFOs and xattrs, and writes small files with node:fs', install: 'install the C library headers' },
];

const cc = process.env.CC || 'cc';
const haveCompiler = spawnSync(cc, ['--version'], { stdio: 'ignore' }).status === 0;
// Node's headers: beside this node (…/bin/node → …/include/node), else npm's nodedir.
const headerDirs = [path.join(path.dirname(process.execPath), '..', 'include', 'node'), process.env.npm_config_nodedir && path.join(process.env.npm_config_nodedir, 'include', 'node')].filter(Boolean);
const nodeHeaders = headerDirs.find((dir) => existsSync(path.join(dir, 'node_api.h')));

let failed = false;
for (const addon of addons) {
  const skip = (why) => console.log(`build-native: ${addon.name} not built (${why}); ${addon.without}`);
  if (!haveCompiler) {
    skip(`no C compiler: ${cc}`);
    continue;
  }
  if (!nodeHeaders) {
    skip(`no node_api.h in ${headerDirs.join(' or ')}`);
    continue;
  }
  const probe = spawnSync(cc, ['-E', '-x', 'c', '-'], { input: `#include <${addon.header}>\n`, stdio: ['pipe', 'ignore', 'ignore'] });
  if (probe.status !== 0) {
    skip(`no <${addon.header}>: ${addon.install}`);
    continue;
  }
  mkdirSync(outDir, { recursive: true });
  const out = path.join(outDir, `${addon.name}.node`);
  const args = ['-O2', '-shared', '-fPIC', '-Wall', '-Wextra', '-Werror', `-DNODE_GYP_MODULE_NAME=${addon.name.replace(/-/g, '_')}`, `-I${nodeHeaders}`, path.join(repo, 'native', `${addon.name}.c`), ...addon.libs, '-o', `${out}.tmp`];
  const result = spawnSync(cc, args, { stdio: 'inherit' });
  if (result.status !== 0) {
    console.error(`build-native: ${cc} ${args.join(' ')} failed (exit ${result.status})`);
    failed = true;
    continue;
  }
  renameSync(`${out}.tmp`, out);
}
process.exit(failed ? 1 : 0);
