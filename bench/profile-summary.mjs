// Aggregates a V8 .cpuprofile (node --cpu-prof) by function: self time per
// (function name, script url), largest first.
//
//   node bench/profile-summary.mjs FILE.cpuprofile [--top N] [--json]
//
// Only the main JavaScript thread is sampled: work done in libuv's threadpool
// (zlib streams, fs reads and writes) shows up as "(idle)" time here.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** @returns {{ totalMs: number, idleMs: number, rows: Array<{name: string, url: string, selfMs: number, share: number}> }} */
export function summarizeProfile(file, repoRoot = process.cwd()) {
  const prof = JSON.parse(fs.readFileSync(file, 'utf8'));
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const selfUs = new Map();
  const samples = prof.samples ?? [];
  const deltas = prof.timeDeltas ?? [];
  for (let i = 0; i < samples.length; i++) {
    const d = deltas[i + 1] ?? 0; // a sample's time is the gap to the next one
    selfUs.set(samples[i], (selfUs.get(samples[i]) ?? 0) + Math.max(0, d));
  }
  const agg = new Map();
  let total = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node) continue;
    const cf = node.callFrame;
    const name = cf.functionName || '(anonymous)';
    let url = cf.url || '';
    if (url.startsWith('file://')) url = fileURLToPath(url);
    if (url.startsWith(repoRoot)) url = path.relative(repoRoot, url);
    url = url.replace(/^.*node_modules\//, 'node_modules/');
    const key = `${name}\u0000${url}`;
    agg.set(key, (agg.get(key) ?? 0) + us);
    total += us;
  }
  // Categories: a sample whose stack is inside module loading counts as start-up;
  // otherwise the self frame decides.
  const parent = new Map();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const loading = new Map();
  const isLoader = (cf) => /^node:internal\/(modules|bootstrap)\//.test(cf.url) || cf.functionName === 'compileForInternalLoader';
  const inLoading = (id) => {
    if (loading.has(id)) return loading.get(id);
    const n = byId.get(id);
    const p = parent.get(id);
    const v = n ? isLoader(n.callFrame) || (p !== undefined && inLoading(p)) : false;
    loading.set(id, v);
    return v;
  };
  const categories = new Map();
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node) continue;
    const c = categoryOf(node.callFrame, inLoading(id));
    categories.set(c, (categories.get(c) ?? 0) + us);
  }
  const rows = [...agg.entries()]
    .map(([k, us]) => {
      const [name, url] = k.split('\u0000');
      return { name, url, selfMs: us / 1000, share: total ? us / total : 0 };
    })
    .sort((a, b) => b.selfMs - a.selfMs);
  const idle = rows.find((r) => r.name === '(idle)');
  const cats = [...categories.entries()].map(([name, us]) => ({ name, selfMs: us / 1000, share: total ? us / total : 0 })).sort((a, b) => b.selfMs - a.selfMs);
  return { totalMs: total / 1000, idleMs: idle ? idle.selfMs : 0, rows, categories: cats };
}

function categoryOf(cf, loading) {
  const name = cf.functionName;
  const url = cf.url || '';
  if (name === '(idle)') return 'idle (waiting: network, threadpool)';
  if (name === '(garbage collector)') return 'garbage collection';
  if (loading) return 'start-up: loading modules';
  if (url === 'node:zlib' || url.startsWith('node:internal/zlib')) return 'zlib callbacks (main-thread side)';
  if (/^write(Buffer|Buffers|String)?$|^writev$|^open|^close$|^fsync/.test(name) && !url) return 'fs calls (submitting reads/writes)';
  if (url.startsWith('node:internal/fs') || url === 'node:fs') return 'fs calls (submitting reads/writes)';
  if (url.startsWith('node:internal/crypto')) return 'sha256 hashing';
  if (url.startsWith('node:internal/streams') || url === 'node:stream' || url.startsWith('node:internal/webstreams')) return 'stream plumbing';
  if (url.includes('undici')) return 'HTTP (undici)';
  if (url.includes('/dist/') || url.startsWith('dist/')) return 'occystrap code';
  if (name === '(program)') return '(program: native, unattributed)';
  return 'other';
}

export function formatCategories(summary) {
  const lines = ['| main-thread time | ms | share |', '|---|---:|---:|'];
  for (const c of summary.categories) lines.push(`| ${c.name} | ${c.selfMs.toFixed(0)} | ${(c.share * 100).toFixed(1)} % |`);
  return lines.join('\n');
}

export function formatProfile(summary, top = 15) {
  const lines = ['| self ms | share | function | script |', '|---:|---:|---|---|'];
  for (const r of summary.rows.slice(0, top)) {
    lines.push(`| ${r.selfMs.toFixed(0)} | ${(r.share * 100).toFixed(1)} % | \`${r.name}\` | ${r.url ? `\`${r.url}\`` : ''} |`);
  }
  return lines.join('\n');
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const file = args.find((a) => !a.startsWith('--') && !/^\d+$/.test(a));
  if (!file) {
    console.error('usage: node bench/profile-summary.mjs FILE.cpuprofile [--top N] [--json]');
    process.exit(2);
  }
  const ti = args.indexOf('--top');
  const top = ti >= 0 ? Number(args[ti + 1]) : 15;
  const s = summarizeProfile(file);
  if (args.includes('--json')) console.log(JSON.stringify({ ...s, rows: s.rows.slice(0, top) }, null, 2));
  else {
    console.log(`sampled ${s.totalMs.toFixed(0)} ms, main thread idle ${s.idleMs.toFixed(0)} ms (${((s.idleMs / (s.totalMs || 1)) * 100).toFixed(0)} %)`);
    console.log(formatCategories(s));
    console.log();
    console.log(formatProfile(s, top));
  }
}
