// `npm run bench`: occystrap against skopeo, on images built here, served by a
// docker-registry started on loopback.
//
// Scenarios (each run alternately A B A B …, after one untimed warm-up run of
// each side; outputs removed and `sync` run between runs; every run measured
// with GNU time):
//   registry-tar   occystrap registry:// → tar://   vs skopeo docker:// → docker-archive:
//   registry-dir   occystrap registry:// → dir://   vs the same skopeo copy
//   registry-ocidir occystrap registry:// → ocidir:// vs skopeo docker:// → oci: (both pass
//                  the blobs through)
//   push-registry  occystrap registry:// → registry:// (another registry, emptied before every
//                  run) vs skopeo docker:// → docker://
//   push-repeat    the same push again, every blob present (HEADs and a manifest)
//   push-tar       occystrap tar:// (docker-save) → registry:// (gzip) vs skopeo docker-archive: → docker://
//   floor          the largest layer inflated and hashed by a bare Node process (bench/floor.mjs)
//   tar-dir        occystrap tar:// (docker-save of the big image) → dir://  (no peer)
//   jobs           occystrap -j 1 vs -j 4, 8 layers, through a slow loopback proxy
//   large          occystrap registry:// → dir:// with a 1 GiB layer vs skopeo (peak RSS;
//                  no warm-up run, BENCH_LARGE_PAIRS pairs)
//   startup        occystrap --version vs skopeo --version (fixed cost of every run)
//   docker-tar     occystrap docker:// → tar:// of the 1 GiB-layer image from Debian's dockerd
//                  vs curl of the raw export to /dev/null (root; dockerd's data on a tmpfs)
//   registry-docker occystrap registry:// → docker:// vs skopeo … docker-daemon:, the
//                  daemon emptied before every run
// then one CPU-profiled registry→dir and registry→tar run (node --cpu-prof).
//
// Environment:
//   BENCH_PAIRS=5          A/B pairs per scenario (at least 5 for the published figures)
//   BENCH_LARGE=1          the 1 GiB-layer scenario (default on; BENCH_LARGE=0 skips it)
//   BENCH_LARGE_PAIRS=3    pairs for the 1 GiB scenario
//   BENCH_LATENCY_MS=50    slow link: delay before each request is forwarded
//   BENCH_MIBPS=8          slow link: MiB/s per connection
//   BENCH_QUIET_BUDGET=90  seconds the bench may spend, in all, waiting before a pair
//                          for the machine to be quiet (under 0.3 core busy; at most
//                          15 s before any one pair)
//   BENCH_ONLY=a,b         run only these scenarios (names above, and "profile")
//   BENCH_DOCS=0           do not rewrite the results section of docs/performance.md
//   BENCH_BUILD=1          rebuild dist/ first (default: only when it is missing)
//
// Files: .bench/images (cached fixtures), .bench/registry (registry storage),
// .bench/tmp (TMPDIR of every measured command: same filesystem as the outputs),
// .bench/out (outputs, removed after each run), .bench/prof (CPU profiles),
// .bench/results/*.json (raw measurements).
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureImages } from './images.mjs';
import { startRegistry, writePolicy, pushImage, skopeo } from './registry.mjs';
import { startSlowProxy } from './slow-proxy.mjs';
import { summarizeProfile } from './profile-summary.mjs';
import { renderResults, updatePerformanceDoc } from './report.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(here, '..');
const BENCH = path.join(REPO, '.bench');
const TMP = path.join(BENCH, 'tmp');
const OUT = path.join(BENCH, 'out');
const CLI = path.join(REPO, 'bin', 'occystrap.js');
const TIME = '/usr/bin/time';
const TIME_FORMAT = '%e %M %O %U %S';

const env = process.env;
const PAIRS = Math.max(1, Number(env.BENCH_PAIRS ?? 5));
const LARGE = (env.BENCH_LARGE ?? '1') !== '0';
const LARGE_PAIRS = Math.max(1, Number(env.BENCH_LARGE_PAIRS ?? 3));
const LATENCY_MS = Number(env.BENCH_LATENCY_MS ?? 50);
const MIBPS = Number(env.BENCH_MIBPS ?? 8);
const QUIET_BUDGET = Number(env.BENCH_QUIET_BUDGET ?? 90);
/** Seconds to wait before each run of an extraction scenario, 0 by default (each starts from dropped caches instead, see startFromSameMemory). */
const SETTLE_S = Number(env.BENCH_SETTLE_S ?? 0);
const ONLY = env.BENCH_ONLY ? new Set(env.BENCH_ONLY.split(',').map((s) => s.trim())) : undefined;
const wanted = (name) => !ONLY || ONLY.has(name);

const log = (...a) => console.error('[bench]', ...a);
const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(0)}s`;

// ------------------------------------------------------------ preflight

function have(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

function preflight() {
  const missing = ['skopeo', 'docker-registry', 'umoci'].filter((c) => !have(c));
  if (!fs.existsSync(TIME)) missing.push('time');
  if (missing.length) {
    log(`missing ${missing.join(', ')}: running scripts/ensure-system-deps.sh`);
    const r = spawnSync('bash', [path.join(REPO, 'scripts', 'ensure-system-deps.sh')], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error('scripts/ensure-system-deps.sh failed; install skopeo, docker-registry and GNU time');
  }
  const main = path.join(REPO, 'dist', 'src', 'shell', 'cli', 'main.js');
  if (env.BENCH_BUILD === '1' || !fs.existsSync(main)) {
    log('building (npm run build)');
    const r = spawnSync('npm', ['run', 'build'], { cwd: REPO, stdio: 'inherit' });
    if (r.status !== 0) throw new Error('npm run build failed');
  }
}

function sh(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.replace(/\s+$/, '') : `(${cmd} failed)`;
}

function machine() {
  const cpu = (fs.readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/) ?? [])[1] ?? os.cpus()[0]?.model ?? '?';
  const df = sh('df', ['-T', BENCH]).split('\n')[1]?.split(/\s+/) ?? [];
  return {
    date: sh('date', ['-u']),
    nproc: sh('nproc', []),
    cpu,
    free: sh('free', ['-h']),
    kernel: sh('uname', ['-r']),
    node: process.version,
    skopeo: sh('skopeo', ['--version']),
    registry: sh('docker-registry', ['--version']),
    occystrap: JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')).version,
    git: sh('git', ['-C', REPO, 'rev-parse', '--short', 'HEAD']),
    dirty: sh('git', ['-C', REPO, 'status', '--porcelain', '--', 'src']).length > 0,
    filesystem: df.length > 1 ? `${df[1]} (${df[0]})` : '?',
    loadavg: os.loadavg().map((x) => x.toFixed(2)).join(' '),
  };
}

// ------------------------------------------------------------ measuring

function childEnv(extra = {}) {
  const e = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('OCCYSTRAP_')) e[k] = v;
  return { ...e, TMPDIR: TMP, ...extra };
}

function rmOut() {
  fs.rmSync(OUT, { recursive: true, force: true });
  fs.mkdirSync(OUT, { recursive: true });
}

function treeBytes(p) {
  let st;
  try {
    st = fs.lstatSync(p);
  } catch {
    return 0;
  }
  if (!st.isDirectory()) return st.size;
  return fs.readdirSync(p).reduce((s, e) => s + treeBytes(path.join(p, e)), 0);
}

/** Runs one command under GNU time; returns its measurement (throws with its stderr on failure). */
function timed(side) {
  return new Promise((resolve, reject) => {
    const tfile = path.join(BENCH, 'time.out');
    fs.rmSync(tfile, { force: true });
    const child = spawn(TIME, ['-f', TIME_FORMAT, '-o', tfile, side.cmd, ...side.args], { cwd: REPO, env: childEnv(side.env), stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (s) => (stderr = (stderr + s).slice(-8000)));
    child.on('error', reject);
    child.on('exit', (code) => {
      const text = fs.existsSync(tfile) ? fs.readFileSync(tfile, 'utf8').trim() : '';
      const last = text.split('\n').pop() ?? '';
      const [wall, rssKb, blocks, user, sys] = last.split(' ').map(Number);
      if (code !== 0 || !Number.isFinite(wall)) {
        reject(new Error(`${side.label} failed (exit ${code}): ${[side.cmd, ...side.args].join(' ')}\n${stderr.trim().slice(-3000)}`));
        return;
      }
      resolve({ wall, rssKb, written: blocks * 512, cpu: user + sys, user, sys });
    });
  });
}

/** Busy and total CPU seconds of the whole machine so far (from /proc/stat). */
function machineCpu() {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  const idle = (f[3] ?? 0) + (f[4] ?? 0);
  return { busy: (total - idle) / 100, total: total / 100 };
}

async function runOnce(template) {
  // A side with perRun() writes each run into a new directory, removed only when the
  // scenario ends: ext4 skips inodes freed in the last 30 s (recently_deleted(), read
  // from the inode table for every candidate), so creating 100,000 files right after
  // deleting the last run's cost ~0.5 ms a file here instead of ~0.06 ms.
  const side = template.perRun ? { ...template, ...template.perRun() } : template;
  if (!template.perRun) rmOut();
  else if (SETTLE_S > 0) await new Promise((r) => setTimeout(r, SETTLE_S * 1000));
  side.prepare?.();
  spawnSync('sync');
  if (template.warm) startFromSameMemory(template.warm);
  const before = machineCpu();
  const m = await timed(side);
  const after = machineCpu();
  // CPU time the rest of the machine used meanwhile (registry, proxy, anything else running).
  m.otherCpu = Math.max(0, after.busy - before.busy - m.cpu);
  m.outputBytes = side.out ? treeBytes(side.out) : 0;
  side.check?.(m);
  const leftovers = fs.readdirSync(TMP);
  if (leftovers.length) {
    m.tempLeft = leftovers;
    log(`WARNING: ${side.label} left ${leftovers.length} entries in its temp dir: ${leftovers.slice(0, 5).join(', ')}`);
    for (const e of leftovers) fs.rmSync(path.join(TMP, e), { recursive: true, force: true });
  }
  if (!template.perRun) rmOut();
  return m;
}

/**
 * Each extraction run starts from the same memory state: caches dropped, then the run's
 * inputs read back into the page cache. Measured here: with 8.5 GB of page cache left by
 * earlier runs, writing 300 MB took 0.85 s of system time; after dropping it, 0.05 s
 * (this VM backs memory it has not touched yet lazily). Dropping the inode-table buffers
 * also ends ext4's recently-deleted scan (no-journal mode skips inodes freed in the last
 * 60-360 s, reading the inode table for each), which cost 0.5 ms a create after deletions.
 * Root only; other runs keep the plain sync.
 */
function startFromSameMemory(inputs) {
  if (process.getuid?.() !== 0) return;
  fs.writeFileSync('/proc/sys/vm/drop_caches', '3');
  const readAll = (p) => {
    const st = fs.statSync(p);
    if (st.isDirectory()) for (const e of fs.readdirSync(p)) readAll(path.join(p, e));
    else if (st.isFile()) {
      const fd = fs.openSync(p, 'r');
      const buf = Buffer.allocUnsafe(1 << 20);
      try {
        while (fs.readSync(fd, buf, 0, buf.length, null) > 0);
      } finally {
        fs.closeSync(fd);
      }
    }
  };
  for (const p of inputs) readAll(p);
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  if (!n) return NaN;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
};

function summarize(runs, layerBytes) {
  return {
    runs,
    wall: median(runs.map((r) => r.wall)),
    rssKb: median(runs.map((r) => r.rssKb)),
    written: median(runs.map((r) => r.written)),
    cpu: median(runs.map((r) => r.cpu)),
    writtenPerLayerByte: median(runs.map((r) => r.written)) / layerBytes,
    otherCpu: median(runs.map((r) => r.otherCpu)),
  };
}

let quietSpent = 0;
/**
 * Waits (at most 15 s, and within the whole run's BENCH_QUIET_BUDGET) until the
 * machine's CPU use over one second, our registry's included, is under 0.3 core.
 * Returns the last reading (cores busy).
 */
async function waitQuiet() {
  for (let waited = 0; ; waited++) {
    const a = machineCpu();
    await new Promise((r) => setTimeout(r, 1000));
    const b = machineCpu();
    const load = (b.busy - a.busy) / ((b.total - a.total) / Number(info.nproc || 1) || 1);
    if (load < 0.3 || quietSpent >= QUIET_BUDGET || waited >= 15) return load;
    quietSpent += 1;
    if (quietSpent % 10 === 0) log(`  waiting for a quiet machine (${load.toFixed(2)} cores busy; ${quietSpent}s of the ${QUIET_BUDGET}s budget spent)`);
  }
}

/**
 * Extraction outputs (hundreds of thousands of inodes) are deleted only when the whole
 * bench ends, and an extraction scenario starts only once the last such deletion is 6
 * minutes old: this machine's ext4 runs without a journal, where inode allocation skips
 * every inode freed in the last 60 s (360 s while its inode-table block is dirty) and
 * reads the inode table to find out; creating a file cost ~0.5 ms instead of ~0.06 ms
 * right after the previous runs' trees were removed (fs/ext4/ialloc.c, recently_deleted).
 */
const TRASH = path.join(BENCH, 'trash');
const LAST_DELETION = path.join(BENCH, 'last-mass-deletion');
const DELETION_WINDOW_S = 370;

function keepForDeletionAtTheEnd() {
  fs.mkdirSync(TRASH, { recursive: true });
  fs.renameSync(OUT, path.join(TRASH, `out-${Date.now()}`));
  fs.mkdirSync(OUT, { recursive: true });
}

function deleteTrash() {
  if (!fs.existsSync(TRASH) || fs.readdirSync(TRASH).length === 0) return;
  fs.rmSync(TRASH, { recursive: true, force: true });
  spawnSync('sync');
  fs.writeFileSync(LAST_DELETION, `${Date.now()}\n`);
}

async function waitOutDeletionWindow() {
  let last = 0;
  try {
    last = Number(fs.readFileSync(LAST_DELETION, 'utf8'));
  } catch {
    return;
  }
  const wait = Math.ceil(DELETION_WINDOW_S - (Date.now() - last) / 1000);
  if (wait <= 0) return;
  log(`  waiting ${wait} s: the last extraction outputs were deleted less than ${DELETION_WINDOW_S} s ago (ext4 without a journal avoids recently freed inodes)`);
  await new Promise((r) => setTimeout(r, wait * 1000));
}

/** A B A B … (one untimed warm-up of each side first). */
async function scenario(s) {
  log(`${elapsed()} scenario ${s.name}: ${s.title}`);
  const sides = [s.a, s.b].filter(Boolean);
  if (sides.some((side) => side.perRun)) await waitOutDeletionWindow();
  for (const side of s.warmup === false ? [] : sides) {
    const w = await runOnce(side);
    log(`  warm-up ${side.label}: ${w.wall}s`);
  }
  const a = [];
  const b = [];
  for (let i = 0; i < s.pairs; i++) {
    const busy = await waitQuiet();
    a.push(await runOnce(s.a));
    a[a.length - 1].busyBefore = busy;
    if (s.b) b.push(await runOnce(s.b));
    const last = (xs) => xs[xs.length - 1];
    log(`  pair ${i + 1}/${s.pairs}: ${s.a.label} ${last(a).wall}s ${Math.round(last(a).rssKb / 1024)} MiB${s.b ? `; ${s.b.label} ${last(b).wall}s ${Math.round(last(b).rssKb / 1024)} MiB` : ''}`);
  }
  if (sides.some((side) => side.perRun)) keepForDeletionAtTheEnd();
  const result = {
    name: s.name,
    title: s.title,
    image: s.image,
    layerBytes: s.layerBytes,
    blobBytes: s.blobBytes,
    layers: s.layers,
    pairs: s.pairs,
    ratioLabel: s.ratioLabel,
    warmup: s.warmup !== false,
    a: { label: s.a.label, command: s.a.display, ...summarize(a, s.layerBytes) },
  };
  if (s.b) {
    result.b = { label: s.b.label, command: s.b.display, ...summarize(b, s.layerBytes) };
    result.ratio = median(a.map((r, i) => r.wall / b[i].wall));
    result.ratios = a.map((r, i) => r.wall / b[i].wall);
  }
  return result;
}

// ---------------------------------------------------------------- sides

const ours = (label, args, out, check, extraEnv) => ({
  label,
  cmd: process.execPath,
  args: [CLI, ...args],
  display: `occystrap ${args.join(' ').replaceAll(`${REPO}/`, '').replace(/127\.0\.0\.1:\d+/g, 'HOST')}`,
  out,
  check,
  env: extraEnv,
});

function checkDir(image) {
  return () => {
    const store = path.join(OUT, 'store');
    let bytes = 0;
    for (const l of image.layers) {
      const f = path.join(store, l.diffId.slice('sha256:'.length), 'layer.tar');
      const st = fs.statSync(f, { throwIfNoEntry: false });
      if (!st || st.size !== l.uncompressedSize) throw new Error(`dir output: ${f} is ${st ? st.size : 'missing'}, expected ${l.uncompressedSize}`);
      bytes += st.size;
    }
    if (!fs.existsSync(path.join(store, 'catalog.json'))) throw new Error('dir output: no catalog.json');
    return bytes;
  };
}

/** Both sides of registry-ocidir: every layer blob is in the layout, untouched (size; digest = name). */
function checkLayout(image, layout) {
  return () => {
    for (const l of image.layers) {
      const f = path.join(layout, 'blobs', 'sha256', l.digest.slice('sha256:'.length));
      const st = fs.statSync(f, { throwIfNoEntry: false });
      if (!st || st.size !== l.size) throw new Error(`oci layout: ${f} is ${st ? st.size : 'missing'}, expected the source blob's ${l.size} bytes`);
    }
    if (!fs.existsSync(path.join(layout, 'index.json'))) throw new Error(`oci layout: no ${layout}/index.json`);
  };
}

function checkTar(image, file) {
  return (m) => {
    if (m.outputBytes < image.layerBytes) throw new Error(`tar output ${file} is ${m.outputBytes} bytes, less than the ${image.layerBytes} layer bytes`);
  };
}

// ----------------------------------------------------------------- main

let info;

async function main() {
  preflight();
  for (const d of [BENCH, TMP, OUT]) fs.mkdirSync(d, { recursive: true });
  for (const e of fs.readdirSync(TMP)) fs.rmSync(path.join(TMP, e), { recursive: true, force: true });
  info = machine();
  log(`${info.date}; ${info.nproc} cores; node ${info.node}; ${info.skopeo}`);

  const names = ['big', 'par', ...(wanted('unpack-many') ? ['many'] : []), ...((LARGE && wanted('large')) || wanted('docker-tar') ? ['large'] : [])];
  const { key, root, images } = await ensureImages(path.join(BENCH, 'images'), names, (m) => log(`${elapsed()} ${m}`));
  const policy = writePolicy(path.join(BENCH, 'policy.json'));

  const registry = await startRegistry(path.join(BENCH, 'run'), path.join(BENCH, 'registry', key));
  for (const entry of fs.readdirSync(path.join(BENCH, 'registry'))) {
    if (entry !== key) fs.rmSync(path.join(BENCH, 'registry', entry), { recursive: true, force: true });
  }
  let proxy;
  const cleanup = async () => {
    await proxy?.stop();
    await registry.stop();
  };
  process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));
  process.once('SIGTERM', () => void cleanup().then(() => process.exit(143)));
  try {
    const refs = {};
    for (const n of names) {
      const t0 = Date.now();
      refs[n] = pushImage(policy, images[n], registry.host);
      log(`${elapsed()} pushed ${refs[n]} in ${((Date.now() - t0) / 1000).toFixed(1)}s`);
    }
    const big = images.big;
    const skopeoSide = (image, ref, label = 'skopeo') => ({
      label,
      cmd: 'skopeo',
      args: ['--policy', policy, 'copy', '--quiet', '--src-tls-verify=false', `docker://${ref}`, `docker-archive:${path.join(OUT, 'skopeo.tar')}`],
      display: `skopeo copy --src-tls-verify=false docker://${ref.replace(registry.host, 'HOST')} docker-archive:OUT.tar`,
      out: path.join(OUT, 'skopeo.tar'),
      check: checkTar(image, 'skopeo.tar'),
    });
    const facts = (image) => ({ image: `${image.repo}:${image.tag}`, layerBytes: image.layerBytes, blobBytes: image.blobBytes, layers: image.layers.length });
    const results = [];

    if (wanted('startup')) {
      results.push(
        await scenario({
          name: 'startup',
          title: 'start-up (`--version`)',
          image: undefined,
          layerBytes: NaN,
          blobBytes: NaN,
          layers: 0,
          pairs: PAIRS,
          ratioLabel: 'occystrap / skopeo',
          a: ours('occystrap', ['--version']),
          b: { label: 'skopeo', cmd: 'skopeo', args: ['--version'], display: 'skopeo --version' },
        }),
      );
    }
    if (wanted('registry-tar')) {
      results.push(
        await scenario({
          name: 'registry-tar',
          title: 'registry → tar',
          ...facts(big),
          pairs: PAIRS,
          ratioLabel: 'occystrap / skopeo',
          a: ours('occystrap', ['--insecure', 'process', `registry://${refs.big}`, `tar://${path.join(OUT, 'out.tar')}`], path.join(OUT, 'out.tar'), checkTar(big, 'out.tar')),
          b: skopeoSide(big, refs.big),
        }),
      );
    }
    if (wanted('registry-dir')) {
      results.push(
        await scenario({
          name: 'registry-dir',
          title: 'registry → dir',
          ...facts(big),
          pairs: PAIRS,
          ratioLabel: 'occystrap / skopeo',
          a: ours('occystrap', ['--insecure', 'process', `registry://${refs.big}`, `dir://${path.join(OUT, 'store')}`], path.join(OUT, 'store'), checkDir(big)),
          b: skopeoSide(big, refs.big),
        }),
      );
    }
    if (wanted('registry-ocidir')) {
      const ours_ = path.join(OUT, 'layout');
      const theirs = path.join(OUT, 'skopeo-layout');
      results.push(
        await scenario({
          name: 'registry-ocidir',
          title: 'registry → OCI layout (blobs passed through)',
          ...facts(big),
          pairs: PAIRS,
          ratioLabel: 'occystrap / skopeo',
          a: ours('occystrap', ['--insecure', 'process', `registry://${refs.big}`, `ocidir://${ours_}:${big.tag}`], ours_, checkLayout(big, ours_)),
          b: {
            label: 'skopeo',
            cmd: 'skopeo',
            args: ['--policy', policy, 'copy', '--quiet', '--src-tls-verify=false', `docker://${refs.big}`, `oci:${theirs}:${big.tag}`],
            display: `skopeo copy --src-tls-verify=false docker://${refs.big.replace(registry.host, 'HOST')} oci:OUT:${big.tag}`,
            out: theirs,
            check: checkLayout(big, theirs),
          },
        }),
      );
    }
    /** skopeo's docker-archive of `big` (written once, kept beside the images). */
    const bigDockerArchive = () => {
      const saved = path.join(root, 'big-docker-save.tar');
      if (!fs.existsSync(saved)) {
        log(`${elapsed()} writing ${saved} with skopeo (docker-archive)`);
        skopeo(policy, ['copy', '--quiet', '--src-tls-verify=false', `docker://${refs.big}`, `docker-archive:${saved}.tmp:${big.repo}:${big.tag}`], childEnv());
        fs.renameSync(`${saved}.tmp`, saved);
      }
      return saved;
    };
    if (wanted('push-registry') || wanted('push-repeat') || wanted('push-tar')) {
      // Registry B keeps its storage under OUT, so every run pushes into an empty registry;
      // registry C keeps its own, so after the warm-up every push finds its blobs there.
      const cold = await startRegistry(path.join(BENCH, 'run-push'), path.join(OUT, 'pushreg'));
      const warmDir = path.join(BENCH, 'pushreg-repeat');
      fs.rmSync(warmDir, { recursive: true, force: true });
      const warm = await startRegistry(path.join(BENCH, 'run-push-repeat'), warmDir);
      const pushedTo = (host, repo) => `${host}/${repo}:${big.tag}`;
      const checkPushed = (dir) => (m) => {
        const bytes = treeBytes(dir);
        if (bytes < big.blobBytes) throw new Error(`push: the registry storage ${dir} holds ${bytes} bytes, less than the ${big.blobBytes} blob bytes`);
        void m;
      };
      const skopeoPush = (src, dest, display) => ({
        label: 'skopeo',
        cmd: 'skopeo',
        args: ['--policy', policy, 'copy', '--quiet', '--src-tls-verify=false', '--dest-tls-verify=false', src, `docker://${dest}`],
        display,
        out: undefined,
        check: undefined,
      });
      try {
        if (wanted('push-registry')) {
          const a = ours('occystrap', ['--insecure', 'process', `registry://${refs.big}`, `registry://${pushedTo(cold.host, 'ours')}`], undefined, undefined);
          a.check = checkPushed(path.join(OUT, 'pushreg'));
          const b = skopeoPush(`docker://${refs.big}`, pushedTo(cold.host, 'skopeo'), 'skopeo copy docker://HOST/big docker://HOST2/skopeo');
          b.check = checkPushed(path.join(OUT, 'pushreg'));
          results.push(await scenario({ name: 'push-registry', title: 'registry → registry (cold: the destination is empty)', ...facts(big), pairs: PAIRS, ratioLabel: 'occystrap / skopeo', a, b }));
        }
        if (wanted('push-repeat')) {
          const a = ours('occystrap', ['--insecure', 'process', `registry://${refs.big}`, `registry://${pushedTo(warm.host, 'ours')}`], undefined, undefined);
          const b = skopeoPush(`docker://${refs.big}`, pushedTo(warm.host, 'skopeo'), 'skopeo copy docker://HOST/big docker://HOST3/skopeo (again)');
          results.push(await scenario({ name: 'push-repeat', title: 'registry → registry again (every blob present)', ...facts(big), pairs: PAIRS, ratioLabel: 'occystrap / skopeo', a, b }));
        }
        if (wanted('push-tar')) {
          const saved = bigDockerArchive();
          const a = ours('occystrap', ['--insecure', 'process', `tar://${saved}`, `registry://${pushedTo(cold.host, 'ours')}`], undefined, undefined);
          a.check = checkPushed(path.join(OUT, 'pushreg'));
          const b = skopeoPush(`docker-archive:${saved}`, pushedTo(cold.host, 'skopeo'), 'skopeo copy docker-archive:big.tar docker://HOST2/skopeo');
          b.check = checkPushed(path.join(OUT, 'pushreg'));
          results.push(await scenario({ name: 'push-tar', title: 'tar (docker-save) → registry, gzip (cold)', ...facts(big), pairs: PAIRS, ratioLabel: 'occystrap / skopeo', a, b }));
        }
      } finally {
        await cold.stop();
        await warm.stop();
      }
    }
    if (wanted('floor')) {
      // The largest layer of `big`: inflate + both hashes, in a bare Node process.
      const largest = [...big.layers].sort((x, y) => y.size - x.size)[0];
      const blob = path.join(big.layout, 'blobs', 'sha256', largest.digest.slice('sha256:'.length));
      results.push(
        await scenario({
          name: 'floor',
          title: `floor: inflate + sha256 of the largest layer (${(largest.size / (1 << 20)).toFixed(0)} MiB gzip), node:zlib, nothing else`,
          ...facts(big),
          pairs: PAIRS,
          ratioLabel: undefined,
          a: { label: 'node:zlib', cmd: process.execPath, args: [path.join(here, 'floor.mjs'), blob], display: 'node bench/floor.mjs LARGEST-BLOB', out: undefined, check: undefined },
        }),
      );
    }
    if (wanted('tar-dir')) {
      const saved = bigDockerArchive();
      results.push(
        await scenario({
          name: 'tar-dir',
          title: 'tar (docker-save) → dir',
          ...facts(big),
          pairs: PAIRS,
          ratioLabel: undefined,
          a: ours('occystrap', ['process', `tar://${saved}`, `dir://${path.join(OUT, 'store')}`], path.join(OUT, 'store'), checkDir(big)),
        }),
      );
    }
    /** A bundle's rootfs holds at least the image's file bytes (both sides). */
    const checkBundle = (image, bundle) => () => {
      const rootfs = path.join(bundle, 'rootfs');
      if (!fs.existsSync(path.join(bundle, 'config.json')) || !fs.existsSync(rootfs)) throw new Error(`bundle ${bundle}: no config.json or rootfs/`);
      const bytes = treeBytes(rootfs);
      if (bytes < image.layerBytes * 0.5) throw new Error(`bundle ${bundle}: rootfs/ holds ${bytes} bytes, far less than the ${image.layerBytes} layer bytes`);
    };
    /** A fresh output directory for every run (see runOnce). */
    let runs = 0;
    const freshDir = (prefix) => path.join(OUT, `${prefix}-${runs++}`);
    const unpackScenario = async (name, title, image, saved) =>
      scenario({
        name,
        title,
        ...facts(image),
        pairs: PAIRS,
        ratioLabel: 'occystrap / umoci',
        a: {
          ...ours('occystrap', ['process', `tar://${saved}`, 'oci://OUT'], undefined, undefined),
          warm: [saved],
          perRun: () => {
            const dir = freshDir('bundle');
            return { args: [CLI, 'process', `tar://${saved}`, `oci://${dir}`], out: dir, check: checkBundle(image, dir) };
          },
        },
        b: {
          label: 'umoci',
          cmd: 'umoci',
          display: `umoci unpack --image ${image.repo.split('/').pop()}:${image.tag} OUT`,
          warm: [image.layout],
          perRun: () => {
            const dir = freshDir('umoci');
            return { args: ['unpack', '--image', `${image.layout}:${image.tag}`, dir], out: dir, check: checkBundle(image, dir) };
          },
        },
      });
    if (wanted('unpack-oci')) {
      results.push(await unpackScenario('unpack-oci', 'tar (docker-save) → oci:// runtime bundle, against umoci unpack of the same image', big, bigDockerArchive()));
    }
    if (wanted('unpack-many')) {
      const many = images.many;
      const saved = path.join(root, 'many-docker-save.tar');
      if (!fs.existsSync(saved)) {
        skopeo(policy, ['copy', '--quiet', `oci:${many.layout}:${many.tag}`, `docker-archive:${saved}.tmp:${many.repo}:${many.tag}`], childEnv());
        fs.renameSync(`${saved}.tmp`, saved);
      }
      results.push(await unpackScenario('unpack-many', 'one layer of 100,000 small files: tar (docker-save) → oci://, against umoci unpack', many, saved));
    }
    if (wanted('jobs')) {
      proxy = await startSlowProxy(registry.url, { latencyMs: LATENCY_MS, bytesPerSecond: MIBPS * (1 << 20) });
      const ref = refs.par.replace(registry.host, proxy.host);
      const par = images.par;
      const side = (j) => ours(`-j ${j}`, ['-j', String(j), '--insecure', 'process', `registry://${ref}`, `dir://${path.join(OUT, 'store')}`], path.join(OUT, 'store'), checkDir(par));
      const r = await scenario({
        name: 'jobs',
        title: `-j 1 vs -j 4 over a slow link (${LATENCY_MS} ms per request, ${MIBPS} MiB/s per connection)`,
        ...facts(par),
        pairs: PAIRS,
        ratioLabel: '-j 1 / -j 4 (speed-up)',
        a: side(1),
        b: side(4),
      });
      r.link = { latencyMs: LATENCY_MS, mibPerSecond: MIBPS, requests: proxy.stats.requests, maxConcurrent: proxy.stats.maxConcurrent };
      results.push(r);
      await proxy.stop();
      proxy = undefined;
    }
    if (LARGE && wanted('large')) {
      const large = images.large;
      results.push(
        await scenario({
          name: 'large',
          title: 'registry → dir with a 1 GiB layer',
          ...facts(large),
          pairs: LARGE_PAIRS,
          warmup: false, // ~20 s a run; the registry's page cache is warm from the push
          ratioLabel: 'occystrap / skopeo',
          a: ours('occystrap', ['--insecure', 'process', `registry://${refs.large}`, `dir://${path.join(OUT, 'store')}`], path.join(OUT, 'store'), checkDir(large)),
          b: skopeoSide(large, refs.large),
        }),
      );
    }

    // Issue 15: docker:// over the Engine API of Debian's dockerd (root only).
    if ((wanted('docker-tar') || wanted('registry-docker')) && process.getuid?.() === 0) {
      // The tests' dockerd starter (test/support/daemons.ts, built into dist/), its data on a tmpfs.
      const { startDockerd } = await import('../dist/test/support/daemons.js');
      // BENCH_DOCKER_DRIVER=overlay2: the daemon's own load is about twice as fast as with vfs.
      const driver = process.env.BENCH_DOCKER_DRIVER === 'overlay2' ? 'overlay2' : 'vfs';
      const dockerd = await startDockerd({ dir: path.join(BENCH, 'dockerd'), dataTmpfsSize: '12g', storageDriver: driver });
      const daemon = { ...dockerd, docker: dockerd.cli };
      try {
        const sock = daemon.socket;
        const emptyDaemon = () => daemon.docker(['image', 'prune', '-af']);
        if (wanted('docker-tar') && images.large) {
          const large = images.large;
          skopeo(policy, ['copy', '--quiet', '--dest-daemon-host', `unix://${sock}`, `oci:${large.layout}:${large.tag}`, 'docker-daemon:bench/large:v1'], childEnv());
          results.push(
            await scenario({
              name: 'docker-tar',
              title: `docker:// → tar:// with a 1 GiB layer (Docker ${daemon.version}, ${driver}), against the raw export to /dev/null`,
              ...facts(large),
              pairs: LARGE_PAIRS,
              ratioLabel: 'occystrap / curl',
              a: ours('occystrap', ['process', `docker://bench/large:v1?socket=${sock}`, `tar://${path.join(OUT, 'out.tar')}`], path.join(OUT, 'out.tar'), checkTar(large, 'out.tar')),
              b: {
                label: 'curl',
                cmd: 'curl',
                args: ['-sf', '--unix-socket', sock, '-o', '/dev/null', 'http://docker/v1.41/images/bench/large:v1/get'],
                display: 'curl --unix-socket SOCK -o /dev/null http://docker/v1.41/images/bench/large:v1/get',
              },
            }),
          );
          emptyDaemon();
        }
        if (wanted('registry-docker')) {
          results.push(
            await scenario({
              name: 'registry-docker',
              title: `registry → docker:// (a fresh load into Docker ${daemon.version}, ${driver}, each run), against skopeo copy … docker-daemon:`,
              ...facts(big),
              pairs: PAIRS,
              ratioLabel: 'occystrap / skopeo',
              a: {
                ...ours('occystrap', ['--insecure', 'process', `registry://${refs.big}`, `docker://bench/big-ours:v1?socket=${sock}`]),
                prepare: emptyDaemon,
                check: () => daemon.docker(['image', 'inspect', 'bench/big-ours:v1']),
              },
              b: {
                label: 'skopeo',
                cmd: 'skopeo',
                args: ['--policy', policy, 'copy', '--quiet', '--src-tls-verify=false', '--dest-daemon-host', `unix://${sock}`, `docker://${refs.big}`, 'docker-daemon:bench/big-skopeo:v1'],
                display: `skopeo copy --src-tls-verify=false --dest-daemon-host unix://SOCK docker://HOST/bench/big:v1 docker-daemon:bench/big-skopeo:v1`,
                prepare: emptyDaemon,
                check: () => daemon.docker(['image', 'inspect', 'bench/big-skopeo:v1']),
              },
            }),
          );
        }
      } finally {
        await daemon.stop();
      }
    }

    // CPU profiles: one registry→dir and one registry→tar run.
    const profiles = [];
    if (wanted('profile')) {
      const profRoot = path.join(BENCH, 'prof');
      fs.rmSync(profRoot, { recursive: true, force: true });
      for (const [name, dest, out] of [
        ['registry-dir', `dir://${path.join(OUT, 'store')}`, path.join(OUT, 'store')],
        ['registry-tar', `tar://${path.join(OUT, 'out.tar')}`, path.join(OUT, 'out.tar')],
      ]) {
        const dir = path.join(profRoot, name);
        const side = {
          label: `profile ${name}`,
          cmd: process.execPath,
          args: ['--cpu-prof', `--cpu-prof-dir=${dir}`, CLI, '--insecure', 'process', `registry://${refs.big}`, dest],
          out,
        };
        await waitQuiet();
        const m = await runOnce(side);
        const file = fs.readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
        if (!file) throw new Error(`no .cpuprofile in ${dir}`);
        const s = summarizeProfile(path.join(dir, file), REPO);
        profiles.push({ name, file: path.relative(REPO, path.join(dir, file)), wall: m.wall, cpu: m.cpu, user: m.user, sys: m.sys, otherCpu: m.otherCpu, totalMs: s.totalMs, idleMs: s.idleMs, categories: s.categories, rows: s.rows.slice(0, 25) });
        log(`${elapsed()} profiled ${name}: ${m.wall}s wall, ${m.cpu.toFixed(2)}s CPU, main thread idle ${(s.idleMs / 1000).toFixed(2)}s of ${(s.totalMs / 1000).toFixed(2)}s`);
      }
    }

    info.loadavgEnd = os.loadavg().map((x) => x.toFixed(2)).join(' ');
    const report = { machine: info, settings: { quietWaitSeconds: quietSpent, quietBudget: QUIET_BUDGET, pairs: PAIRS, largePairs: LARGE_PAIRS, latencyMs: LATENCY_MS, mibPerSecond: MIBPS, timeFormat: TIME_FORMAT, fixtureKey: key }, images, results, profiles, benchSeconds: (Date.now() - started) / 1000 };
    fs.mkdirSync(path.join(BENCH, 'results'), { recursive: true });
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    const jsonFile = path.join(BENCH, 'results', `${stamp}.json`);
    fs.writeFileSync(jsonFile, JSON.stringify(report, null, 2));
    const md = renderResults(report);
    fs.writeFileSync(path.join(BENCH, 'results', `${stamp}.md`), md);
    console.log(md);
    log(`raw results: ${path.relative(REPO, jsonFile)}`);
    if (env.BENCH_DOCS !== '0' && !ONLY) {
      updatePerformanceDoc(path.join(REPO, 'docs', 'performance.md'), md);
      log('docs/performance.md: "Benchmark results" section updated');
    }
    log(`done in ${elapsed()}`);
  } finally {
    await cleanup();
    deleteTrash();
  }
}

main().catch((e) => {
  console.error(`[bench] ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});
