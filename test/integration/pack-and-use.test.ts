// The package as a consumer meets it: `npm pack`, unpacked into a fresh project as npm
// unpacks it (dependencies linked from this repository's install, so the test stays off
// the network), then a strict TypeScript example compiled against its types and run: it
// opens a docker-save fixture, runs a shipped filter through runPipeline, writes a store.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { cleanupTmpDirs, fixture, fixturePath, repoRoot, run, tmpDir } from './fixtures.js';

after(async () => {
  await cleanupTmpDirs();
});

const EXAMPLE = `import { buildFilters, DEFAULT_PLATFORM, openInput, openOutput, runPipeline, TempScope, type InputSettings } from 'occystrap';
import { LedgerEffects, parseDigest, type ImageFilter, type LayerElement, type ProgressObserver } from 'occystrap/core';

const [source, destination] = process.argv.slice(2) as [string, string];
const filters: ImageFilter[] = buildFilters(['normalize-timestamps:ts=0']);
const settings: InputSettings = { retries: 1, platform: DEFAULT_PLATFORM };
const input = await openInput(source, settings);
const scope = await TempScope.open({ parent: process.env['TMPDIR'] ?? '/tmp' });
const stored: number[] = [];
const progress: ProgressObserver = { written: (layer: LayerElement) => void stored.push(layer.layer.index) };
try {
  const summary = await runPipeline({ input, filters, output: await openOutput(destination), effects: scope, parallelism: 2, progress });
  const ok = parseDigest('sha256:' + '0'.repeat(64))._tag === 'Right';
  // The in-memory effects are the package's too: a file made and released, nothing written.
  const memory = new LedgerEffects();
  await memory.perform({ _tag: 'Release', file: await memory.perform({ _tag: 'CreateTemp', owner: 'me', purpose: 'x' }), owner: 'me' });
  console.log(JSON.stringify({ layers: summary.layers, digestParses: ok, storedSeen: stored.length, memoryLive: memory.ledger.liveCount() }));
} finally {
  await input.close?.();
  await scope.close();
}
`;

test('npm pack, unpack into a new project, compile a strict example against the types, run it', async () => {
  const work = await tmpDir('pack-and-use');
  // --ignore-scripts: dist/ is built already; prepack would rebuild it under the running tests.
  const pack = await run('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', work], { cwd: repoRoot, timeoutMs: 120_000 });
  assert.equal(pack.code, 0, pack.stderr);
  const tgz = path.join(work, pack.stdout.trim().split('\n').pop() as string);

  const project = path.join(work, 'consumer');
  const installed = path.join(project, 'node_modules', 'occystrap');
  mkdirSync(installed, { recursive: true });
  const untar = await run('tar', ['-xzf', tgz, '-C', installed, '--strip-components=1']);
  assert.equal(untar.code, 0, untar.stderr);

  // What is shipped: a license, no install-time build, source maps that carry their sources.
  const manifest = JSON.parse(readFileSync(path.join(installed, 'package.json'), 'utf8')) as { scripts?: Record<string, string> };
  assert.ok(readFileSync(path.join(installed, 'LICENSE'), 'utf8').includes('Apache License'));
  for (const hook of ['prepare', 'install', 'preinstall', 'postinstall']) assert.equal(manifest.scripts?.[hook], undefined, `no ${hook} script runs in a consumer's install`);
  const map = JSON.parse(readFileSync(path.join(installed, 'dist', 'src', 'index.js.map'), 'utf8')) as { sources: string[]; sourcesContent?: string[] };
  assert.equal(map.sourcesContent?.length, map.sources.length, 'maps carry their sources');
  assert.deepEqual(readdirSync(installed).filter((n) => ['src', 'test', 'property-tests', 'bench'].includes(n)), []);

  for (const dep of readdirSync(path.join(repoRoot, 'node_modules'))) {
    if (dep === '.bin' || dep.startsWith('.')) continue;
    symlinkSync(path.join(repoRoot, 'node_modules', dep), path.join(project, 'node_modules', dep));
  }
  writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  writeFileSync(
    path.join(project, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noUncheckedIndexedAccess: true, types: ['node'], outDir: 'out', skipLibCheck: false } }),
  );
  writeFileSync(path.join(project, 'index.ts'), EXAMPLE);
  const tsc = await run(process.execPath, [path.join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', project], { cwd: project, timeoutMs: 120_000 });
  assert.equal(tsc.code, 0, tsc.stdout + tsc.stderr);

  const store = path.join(work, 'store');
  const r = await run(process.execPath, [path.join(project, 'out', 'index.js'), `tar://${fixturePath('docker-classic.tar')}`, `dir://${store}`], { cwd: project, env: { ...process.env, TMPDIR: work } });
  assert.equal(r.code, 0, r.stderr);
  const layers = fixture('docker-classic.tar').images[0]?.diffIds.length;
  assert.deepEqual(JSON.parse(r.stdout), { layers, digestParses: true, storedSeen: layers, memoryLive: 0 });
  assert.ok(readdirSync(store).includes('manifest.json'));

  // The CLI the package ships runs from the unpacked copy.
  const cli = await run(process.execPath, [path.join(installed, 'bin', 'occystrap.js'), '--version']);
  assert.equal(cli.code, 0, cli.stderr);
  assert.equal(cli.stdout.trim(), JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')).version);
});
