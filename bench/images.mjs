// Benchmark fixture images, generated offline and deterministically with Node
// alone, written as OCI image layouts (one per image) and cached under
// .bench/images/<key>/, where <key> hashes this file, the parameters and the
// zlib version (gzip output depends on it).
//
//   big    8 layers: one ~200 MiB compressible layer of source-like text files,
//          one 64 MiB incompressible layer (seeded random bytes), six small
//          layers (50 KiB – 2 MiB), all gzip level 6.
//   par    8 layers of 4 MiB seeded random bytes each (for -j over a slow link).
//   large  one 1 GiB layer of source-like text (gzip level 1) plus one small
//          layer: peak RSS with a 1 GiB layer.
//   many   one layer of 100,000 small source-like files (100 B – 2 KiB) in 1,000
//          package directories: extraction of many small files.
//
// Every layer is streamed: PRNG → tar → sha256 (diff_id) → gzip → sha256
// (blob digest) → file. Memory stays small whatever the layer size.
import { createCipheriv, createHash } from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';

const MiB = 1 << 20;
const CREATED = '2024-01-02T03:04:05Z';
const MTIME = Math.floor(Date.parse(CREATED) / 1000);

export const MEDIA = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  layerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
};

/** What to build. Sizes are uncompressed tar payload targets. */
export const SPECS = {
  big: {
    repo: 'bench/big',
    tag: 'v1',
    layers: [
      { kind: 'text', seed: 'big-0', bytes: 1.5 * MiB, level: 6, root: 'etc/bench' },
      { kind: 'text', seed: 'big-1', bytes: 300 * 1024, level: 6, root: 'usr/lib/bench-tools' },
      { kind: 'text', seed: 'big-2', bytes: 200 * MiB, level: 6, root: 'usr/src/app' },
      { kind: 'text', seed: 'big-3', bytes: 800 * 1024, level: 6, root: 'usr/share/doc/bench' },
      { kind: 'random', seed: 'big-4', bytes: 64 * MiB, level: 6, files: 4, root: 'opt/data' },
      { kind: 'text', seed: 'big-5', bytes: 100 * 1024, level: 6, root: 'etc/bench.d' },
      { kind: 'text', seed: 'big-6', bytes: 2 * MiB, level: 6, root: 'usr/local/share/bench' },
      { kind: 'text', seed: 'big-7', bytes: 50 * 1024, level: 6, root: 'srv/bench' },
    ],
  },
  par: {
    repo: 'bench/par',
    tag: 'v1',
    layers: Array.from({ length: 8 }, (_, i) => ({ kind: 'random', seed: `par-${i}`, bytes: 4 * MiB, level: 6, files: 1, root: `opt/par${i}` })),
  },
  many: {
    repo: 'bench/many',
    tag: 'v1',
    layers: [{ kind: 'small', seed: 'many-0', files: 100_000, level: 6, root: 'usr/lib/node_modules' }],
  },
  large: {
    repo: 'bench/large',
    tag: 'v1',
    layers: [
      { kind: 'text', seed: 'large-0', bytes: 1024 * MiB, level: 1, root: 'usr/src/huge' },
      { kind: 'text', seed: 'large-1', bytes: 200 * 1024, level: 6, root: 'etc/huge' },
    ],
  },
};

const here = path.dirname(fileURLToPath(import.meta.url));

/** Cache key: this generator's source, the specs and the zlib version. */
export function generatorKey() {
  const h = createHash('sha256');
  h.update(fs.readFileSync(fileURLToPath(import.meta.url)));
  h.update(JSON.stringify(SPECS));
  h.update(`zlib ${process.versions.zlib}`);
  return h.digest('hex').slice(0, 16);
}

// ------------------------------------------------------------------ PRNG

/** sfc32, seeded from sha256(seed). Returns floats in [0, 1). */
function makeRandom(seed) {
  const s = createHash('sha256').update(seed).digest();
  let a = s.readUInt32LE(0);
  let b = s.readUInt32LE(4);
  let c = s.readUInt32LE(8);
  let d = s.readUInt32LE(12);
  const next = () => {
    a |= 0;
    b |= 0;
    c |= 0;
    d |= 0;
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  for (let i = 0; i < 16; i++) next();
  return next;
}

/** Incompressible bytes: AES-256-CTR keystream keyed by sha256(seed). */
function randomStream(seed) {
  const key = createHash('sha256').update(`key:${seed}`).digest();
  const iv = createHash('sha256').update(`iv:${seed}`).digest().subarray(0, 16);
  const cipher = createCipheriv('aes-256-ctr', key, iv);
  const zeros = Buffer.alloc(MiB);
  return (n) => cipher.update(n === zeros.length ? zeros : zeros.subarray(0, n));
}

// -------------------------------------------------------- text generator

const SYLLABLES = 'ba be bi bo bu ca co cu da de di do fa fe fi fo ga ge go ha he hi ho ka ke ki ko la le li lo lu ma me mi mo mu na ne ni no nu pa pe pi po pu ra re ri ro ru sa se si so su ta te ti to tu va ve vi vo wa we xa ya yo za ze zo tr st pr gr cl bl fl sh ch th ng nd nt rs ks'.split(' ');
const ENGLISH = 'the of and to in is for that with as on are this be by from at or an it not can if will which when all each one has more than also use returns value error file data user type list name new set get state config default option buffer stream layer image digest hash size path index table entry node input output result request response cache queue worker thread handle event update check parse write read open close start stop init load save copy move free alloc count total offset length limit number string object array map key item field flag mode level status code message context callback handler module package version build test run'.split(' ');
const KEYWORDS = {
  c: ['static', 'int', 'const', 'char', 'void', 'unsigned', 'size_t', 'struct', 'return', 'if', 'else', 'for', 'while', 'break', 'NULL', 'sizeof'],
  py: ['def', 'return', 'if', 'elif', 'else', 'for', 'in', 'while', 'import', 'from', 'class', 'self', 'None', 'True', 'False', 'not', 'and', 'with', 'as', 'yield'],
  js: ['const', 'let', 'function', 'return', 'if', 'else', 'for', 'of', 'await', 'async', 'export', 'import', 'new', 'this', 'null', 'undefined', 'true', 'false', 'throw'],
};
const EXT = ['c', 'h', 'py', 'js', 'ts', 'md', 'txt', 'json', 'c', 'py', 'js', 'go'];

class TextGen {
  constructor(seed) {
    this.r = makeRandom(seed);
    const word = (n) => {
      let s = '';
      for (let i = 0; i < n; i++) s += SYLLABLES[Math.floor(this.r() * SYLLABLES.length)];
      return s;
    };
    this.words = [...ENGLISH];
    while (this.words.length < 1500) this.words.push(word(1 + Math.floor(this.r() * 3)));
    this.ids = [];
    for (let i = 0; i < 3000; i++) {
      const parts = 1 + Math.floor(this.r() * 3);
      const ws = Array.from({ length: parts }, () => this.pick(this.words));
      this.ids.push(this.r() < 0.5 ? ws.join('_') : ws.map((w, j) => (j === 0 ? w : w[0].toUpperCase() + w.slice(1))).join(''));
    }
  }
  int(n) {
    return Math.floor(this.r() * n);
  }
  /** Zipf-ish: strongly prefers the front of the list. */
  pick(list) {
    const x = this.r();
    return list[Math.floor(list.length * x * x * x)];
  }
  sentence(n) {
    let s = this.pick(this.words);
    for (let i = 1; i < n; i++) s += ` ${this.pick(this.words)}`;
    return s;
  }
  codeLine(lang, depth) {
    const kw = KEYWORDS[lang === 'h' || lang === 'go' ? 'c' : lang === 'ts' ? 'js' : lang] ?? KEYWORDS.c;
    const ind = '    '.repeat(depth);
    const id = () => this.pick(this.ids);
    const k = () => kw[this.int(kw.length)];
    switch (this.int(9)) {
      case 0:
        return `${ind}${lang === 'py' ? '#' : '//'} ${this.sentence(4 + this.int(9))}`;
      case 1:
        return `${ind}${k()} ${id()} = ${id()}(${id()}, ${this.int(4096)});`;
      case 2:
        return `${ind}if (${id()} ${['==', '!=', '<', '>=', '&&'][this.int(5)]} ${id()}) ${k()} ${id()};`;
      case 3:
        return `${ind}${id()}.${id()}(${id()}, "${this.sentence(1 + this.int(4))}");`;
      case 4:
        return `${ind}${k()} ${id()}(${id()} ${id()}, ${id()} ${id()})`;
      case 5:
        return `${ind}${id()}[${this.int(64)}] = 0x${this.int(0xffffff).toString(16)};`;
      case 6:
        return `${ind}return ${id()} + ${id()};`;
      case 7:
        return '';
      default:
        return `${ind}${k()} ${id()} ${k()} ${id()}:`;
    }
  }
  file(ext, size) {
    const lines = [];
    let n = 0;
    if (ext === 'md' || ext === 'txt') {
      lines.push(`# ${this.sentence(3 + this.int(5))}`);
      while (n < size) {
        const l = this.sentence(6 + this.int(14));
        lines.push(l);
        n += l.length + 1;
        if (this.int(6) === 0) lines.push('');
      }
    } else if (ext === 'json') {
      lines.push('{');
      while (n < size) {
        const l = `  "${this.pick(this.ids)}": ${this.int(3) === 0 ? this.int(100000) : `"${this.sentence(1 + this.int(5))}"`},`;
        lines.push(l);
        n += l.length + 1;
      }
      lines.push('  "end": true', '}');
    } else {
      let depth = 0;
      while (n < size) {
        const l = this.codeLine(ext, depth);
        lines.push(l);
        n += l.length + 1;
        if (l.endsWith(')') || l.endsWith(':')) depth = Math.min(depth + 1, 6);
        else if (depth > 0 && this.int(5) === 0) depth--;
      }
    }
    return Buffer.from(`${lines.join('\n')}\n`, 'latin1');
  }
  /** About `size` bytes of `pool` from a random line start, prefixed by `head`. */
  slice(pool, size, head) {
    let start = this.int(Math.max(1, pool.length - size));
    const nl = pool.indexOf(10, start);
    start = nl < 0 || nl + 1 >= pool.length ? 0 : nl + 1;
    let end = Math.min(pool.length, start + size);
    const e = pool.indexOf(10, end);
    end = e < 0 ? pool.length : e + 1;
    return Buffer.concat([Buffer.from(head, 'latin1'), pool.subarray(start, end)]);
  }
  /** Log-normal file size, median ~12 KiB, clamped to [200 B, 512 KiB]. */
  fileSize() {
    const u1 = this.r() || 1e-9;
    const u2 = this.r();
    const z = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
    return Math.max(200, Math.min(512 * 1024, Math.round(Math.exp(9.4 + 1.2 * z))));
  }
}

// ------------------------------------------------------------------ tar

function octal(buf, offset, width, value) {
  const s = value.toString(8).padStart(width - 1, '0');
  if (s.length > width - 1) throw new Error(`tar: ${value} does not fit in ${width} bytes`);
  buf.write(s, offset, 'ascii');
  buf[offset + width - 1] = 0;
}

/** One ustar header (name split into prefix/name when over 100 bytes). */
function tarHeader(name, size, type, mode) {
  const b = Buffer.alloc(512);
  let prefix = '';
  let base = name;
  if (Buffer.byteLength(name) > 100) {
    const cut = name.lastIndexOf('/', 155);
    if (cut <= 0 || name.length - cut - 1 > 100) throw new Error(`tar: name too long: ${name}`);
    prefix = name.slice(0, cut);
    base = name.slice(cut + 1);
  }
  b.write(base, 0, 'ascii');
  octal(b, 100, 8, mode);
  octal(b, 108, 8, 0);
  octal(b, 116, 8, 0);
  octal(b, 124, 12, size);
  octal(b, 136, 12, MTIME);
  b.fill(0x20, 148, 156);
  b.write(type, 156, 'ascii');
  b.write('ustar\u000000', 257, 'ascii');
  b.write('root', 265, 'ascii');
  b.write('root', 297, 'ascii');
  b.write(prefix, 345, 'ascii');
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += b[i];
  b.write(`${sum.toString(8).padStart(6, '0')}\u0000 `, 148, 'ascii');
  return b;
}

class HashCount extends Transform {
  constructor() {
    super();
    this.hash = createHash('sha256');
    this.size = 0;
  }
  _transform(chunk, _enc, cb) {
    this.hash.update(chunk);
    this.size += chunk.length;
    cb(null, chunk);
  }
}

/** Streams a tar through gzip into blobs/sha256/, hashing both sides. */
class LayerWriter {
  constructor(blobDir, level) {
    this.blobDir = blobDir;
    this.tmp = path.join(blobDir, `.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`);
    this.diff = createHash('sha256');
    this.size = 0;
    // A deep write buffer lets the generator run while gzip works in the threadpool.
    this.gzip = zlib.createGzip({ level, memLevel: 8, chunkSize: 256 * 1024, writableHighWaterMark: 8 * MiB });
    this.pending = [];
    this.pendingBytes = 0;
    this.blob = new HashCount();
    this.done = pipeline(this.gzip, this.blob, fs.createWriteStream(this.tmp));
    this.done.catch(() => undefined);
    this.dirs = new Set();
  }
  async write(buf) {
    this.pending.push(buf);
    this.pendingBytes += buf.length;
    if (this.pendingBytes >= MiB) await this.flush();
  }
  async flush() {
    if (this.pendingBytes === 0) return;
    const buf = this.pending.length === 1 ? this.pending[0] : Buffer.concat(this.pending);
    this.pending = [];
    this.pendingBytes = 0;
    this.diff.update(buf);
    this.size += buf.length;
    if (!this.gzip.write(buf)) await Promise.race([once(this.gzip, 'drain'), this.done]);
  }
  async dir(name) {
    const parts = name.split('/');
    for (let i = 1; i <= parts.length; i++) {
      const d = parts.slice(0, i).join('/');
      if (this.dirs.has(d)) continue;
      this.dirs.add(d);
      await this.write(tarHeader(`${d}/`, 0, '5', 0o755));
    }
  }
  async file(name, data, mode = 0o644) {
    await this.dir(path.posix.dirname(name));
    await this.write(tarHeader(name, data.length, '0', mode));
    await this.write(data);
    const pad = (512 - (data.length % 512)) % 512;
    if (pad) await this.write(Buffer.alloc(pad));
  }
  /** A big file whose content comes in chunks (for random data). */
  async streamFile(name, size, nextChunk, mode = 0o644) {
    await this.dir(path.posix.dirname(name));
    await this.write(tarHeader(name, size, '0', mode));
    let left = size;
    while (left > 0) {
      const n = Math.min(left, MiB);
      await this.write(nextChunk(n));
      left -= n;
    }
    const pad = (512 - (size % 512)) % 512;
    if (pad) await this.write(Buffer.alloc(pad));
  }
  async finish() {
    await this.write(Buffer.alloc(1024));
    await this.flush();
    this.gzip.end();
    await this.done;
    const hex = this.blob.hash.digest('hex');
    fs.renameSync(this.tmp, path.join(this.blobDir, hex));
    return { digest: `sha256:${hex}`, size: this.blob.size, diffId: `sha256:${this.diff.digest('hex')}`, uncompressedSize: this.size };
  }
}

async function writeLayer(blobDir, spec) {
  const w = new LayerWriter(blobDir, spec.level);
  if (spec.kind === 'random') {
    const next = randomStream(spec.seed);
    const files = spec.files ?? 1;
    const per = Math.floor(spec.bytes / files);
    for (let i = 0; i < files; i++) await w.streamFile(`${spec.root}/blob-${i}.bin`, per, next);
  } else if (spec.kind === 'small') {
    const g = new TextGen(spec.seed);
    const pool = g.file('js', 2 * MiB);
    for (let n = 0; n < spec.files; n++) {
      const size = 100 + g.int(1948);
      const data = g.slice(pool, size, `// ${spec.seed} file ${n}\n`);
      // Tree order, 100 files per package directory, as tar writes a real tree.
      await w.file(`${spec.root}/pkg-${Math.floor(n / 100)}/lib/${g.pick(g.ids).slice(0, 30)}-${n}.js`, data, 0o644);
    }
  } else {
    const g = new TextGen(spec.seed);
    let total = 0;
    let n = 0;
    const dirs = Array.from({ length: 8 + g.int(24) }, () => `${spec.root}/${g.pick(g.ids)}/${g.pick(g.words)}`);
    // Files are line-aligned slices of per-extension text pools (generating every
    // byte afresh is far slower than gzip); pools are larger than gzip's 32 KiB
    // window, so the compression ratio is that of the generated text.
    const poolSize = Math.max(256 * 1024, Math.min(2 * MiB, Math.ceil(spec.bytes / 8)));
    const pools = new Map();
    while (total < spec.bytes) {
      const ext = EXT[g.int(EXT.length)];
      const size = Math.min(g.fileSize(), Math.max(200, spec.bytes - total));
      let pool = pools.get(ext);
      if (!pool) pools.set(ext, (pool = g.file(ext, poolSize)));
      const data = g.slice(pool, size, `${ext === 'py' ? '#' : '//'} ${spec.seed} file ${n}\n`);
      const name = `${dirs[g.int(dirs.length)]}/${g.pick(g.ids).slice(0, 40)}-${n++}.${ext}`;
      await w.file(name, data, ext === 'py' && g.int(4) === 0 ? 0o755 : 0o644);
      total += data.length + 512;
    }
  }
  return w.finish();
}

function writeBlob(blobDir, bytes) {
  const hex = createHash('sha256').update(bytes).digest('hex');
  fs.writeFileSync(path.join(blobDir, hex), bytes);
  return { digest: `sha256:${hex}`, size: bytes.length };
}

/** Writes one image as an OCI layout in `dir`; returns its facts. */
async function buildImage(dir, name, spec, log) {
  const blobDir = path.join(dir, 'blobs', 'sha256');
  fs.mkdirSync(blobDir, { recursive: true });
  const layers = [];
  for (const [i, l] of spec.layers.entries()) {
    const t0 = Date.now();
    const layer = await writeLayer(blobDir, l);
    log(`${name}: layer ${i} (${l.kind}) ${(layer.uncompressedSize / MiB).toFixed(1)} MiB -> ${(layer.size / MiB).toFixed(1)} MiB gzip in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    layers.push(layer);
  }
  const config = {
    created: CREATED,
    architecture: 'amd64',
    os: 'linux',
    config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['/bin/sh'] },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history: layers.map((_, i) => ({ created: CREATED, created_by: `occystrap bench ${name} layer ${i}` })),
  };
  const configBlob = writeBlob(blobDir, Buffer.from(JSON.stringify(config)));
  const manifest = {
    schemaVersion: 2,
    mediaType: MEDIA.ociManifest,
    config: { mediaType: MEDIA.ociConfig, ...configBlob },
    layers: layers.map((l) => ({ mediaType: MEDIA.layerGzip, digest: l.digest, size: l.size })),
  };
  const manifestBlob = writeBlob(blobDir, Buffer.from(JSON.stringify(manifest)));
  const index = {
    schemaVersion: 2,
    mediaType: MEDIA.ociIndex,
    manifests: [{ mediaType: MEDIA.ociManifest, ...manifestBlob, annotations: { 'org.opencontainers.image.ref.name': spec.tag } }],
  };
  fs.writeFileSync(path.join(dir, 'index.json'), JSON.stringify(index));
  fs.writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  return {
    name,
    repo: spec.repo,
    tag: spec.tag,
    layout: dir,
    manifestDigest: manifestBlob.digest,
    layers: layers.map((l) => ({ digest: l.digest, size: l.size, diffId: l.diffId, uncompressedSize: l.uncompressedSize })),
    layerBytes: layers.reduce((s, l) => s + l.uncompressedSize, 0),
    blobBytes: layers.reduce((s, l) => s + l.size, 0),
  };
}

/**
 * Ensures the images `names` exist under `cacheRoot/<key>/`; builds what is
 * missing. Returns facts per image name.
 */
export async function ensureImages(cacheRoot, names, log = console.error) {
  const key = generatorKey();
  const root = path.join(cacheRoot, key);
  fs.mkdirSync(root, { recursive: true });
  // Caches made by another version of this generator are useless: remove them.
  for (const entry of fs.readdirSync(cacheRoot)) {
    if (entry !== key && /^[0-9a-f]{16}$/.test(entry)) fs.rmSync(path.join(cacheRoot, entry), { recursive: true, force: true });
  }
  const out = {};
  for (const name of names) {
    const dir = path.join(root, name);
    const metaFile = path.join(dir, 'meta.json');
    if (fs.existsSync(metaFile)) {
      out[name] = JSON.parse(fs.readFileSync(metaFile, 'utf8'));
      continue;
    }
    fs.rmSync(dir, { recursive: true, force: true });
    const t0 = Date.now();
    log(`building image ${name} in ${dir}`);
    const facts = await buildImage(dir, name, SPECS[name], log);
    facts.buildSeconds = (Date.now() - t0) / 1000;
    fs.writeFileSync(metaFile, JSON.stringify(facts, null, 2));
    out[name] = facts;
  }
  return { key, root, images: out };
}

// `node bench/images.mjs [name...]` builds (or reuses) the images and prints their facts.
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const names = process.argv.slice(2);
  const r = await ensureImages(path.join(here, '..', '.bench', 'images'), names.length ? names : ['big', 'par']);
  console.log(JSON.stringify(r, null, 2));
}
