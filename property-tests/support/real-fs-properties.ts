/**
 * A property on the real file system (node:fs through TempScope's default port): random
 * create / hand-over / move / release sequences in a fresh directory under os.tmpdir(),
 * then close.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';
import * as fc from 'fast-check';
import { type BlobCompression, OwnershipError, type TempFile } from '../../src/core/ownership.js';
import { TempScope } from '../../src/shell/scope.js';
import { OWNERS, type Owner } from './ownership-properties.js';
import { decompress as zstdDecompress } from 'fzstd';
import type { ScopeUnderTest } from './scopes.js';

/** Opens a handler on the real fs with its run dir under `parent`. */
export type NodeScopeFactory = (parent: string) => Promise<ScopeUnderTest>;

/** The real one: TempScope.open without an `fs` option, i.e. the node port. */
export const nodeScope: NodeScopeFactory = (parent) => TempScope.open({ parent });

type Action =
  | { readonly kind: 'create'; readonly owner: Owner; readonly beside: boolean }
  | { readonly kind: 'handOver'; readonly n: number; readonly to: Owner }
  | { readonly kind: 'move'; readonly n: number }
  | { readonly kind: 'release'; readonly n: number }
  | { readonly kind: 'wrongRelease'; readonly n: number }
  | { readonly kind: 'close' };

const ownerArb = fc.constantFrom(...OWNERS);
export const realFsActionsArb: fc.Arbitrary<Action[]> = fc.array(
  fc.oneof(
    { arbitrary: fc.record({ kind: fc.constant('create' as const), owner: ownerArb, beside: fc.boolean() }), weight: 4 },
    { arbitrary: fc.record({ kind: fc.constant('handOver' as const), n: fc.nat(), to: ownerArb }), weight: 2 },
    { arbitrary: fc.record({ kind: fc.constant('move' as const), n: fc.nat() }), weight: 2 },
    { arbitrary: fc.record({ kind: fc.constant('release' as const), n: fc.nat() }), weight: 2 },
    { arbitrary: fc.record({ kind: fc.constant('wrongRelease' as const), n: fc.nat() }), weight: 1 },
    { arbitrary: fc.constant({ kind: 'close' as const }), weight: 1 },
  ),
  { maxLength: 20 },
);

async function exists(p: string): Promise<boolean> {
  return fsp.stat(p).then(
    () => true,
    () => false,
  );
}

export function realFsProperty(factory: NodeScopeFactory) {
  return fc.asyncProperty(realFsActionsArb, async (actions) => {
    const base = await fsp.mkdtemp(path.join(os.tmpdir(), 'occystrap-prop-'));
    try {
      const parent = path.join(base, 'tmp');
      const dest = path.join(base, 'dest');
      await fsp.mkdir(dest);
      const scope = await factory(parent);
      const live: Array<{ file: TempFile; owner: Owner; i: number; target: string }> = [];
      const moved = new Map<string, string>(); // name in dest → content
      let created = 0;
      const problems: string[] = [];
      for (const a of actions) {
        if (a.kind === 'close') break;
        if (a.kind === 'create') {
          const i = created++;
          const target = path.join(dest, a.beside ? `final-${i}.tar` : `m${i}`);
          const file = await scope.perform({ _tag: 'CreateTemp', owner: a.owner, purpose: `t${i}`, ...(a.beside ? { location: { _tag: 'Beside', target } as const } : {}) });
          if (path.dirname(file.path) !== (a.beside ? dest : scope.runDir)) problems.push(`${file.path} is in the wrong directory`);
          await fsp.writeFile(file.path, `content-${i}`);
          live.push({ file, owner: a.owner, i, target });
          continue;
        }
        if (live.length === 0) continue;
        const k = a.n % live.length;
        const entry = live[k] as (typeof live)[number];
        if (a.kind === 'handOver') {
          await scope.perform({ _tag: 'HandOver', file: entry.file, from: entry.owner, to: a.to });
          entry.owner = a.to;
        } else if (a.kind === 'move') {
          await scope.perform({ _tag: 'MoveIntoPlace', file: entry.file, owner: entry.owner, destination: entry.target });
          live.splice(k, 1);
          moved.set(path.basename(entry.target), `content-${entry.i}`);
          if (await exists(entry.file.path)) problems.push(`moved, but ${entry.file.path} still exists`);
        } else if (a.kind === 'release') {
          await scope.perform({ _tag: 'Release', file: entry.file, owner: entry.owner });
          live.splice(k, 1);
          if (await exists(entry.file.path)) problems.push(`released, but ${entry.file.path} still exists`);
        } else {
          const wrong = OWNERS[(OWNERS.indexOf(entry.owner) + 1) % OWNERS.length] as Owner;
          const r = await scope.perform({ _tag: 'Release', file: entry.file, owner: wrong }).then(
            () => 'accepted',
            (e: unknown) => (e instanceof OwnershipError ? 'rejected' : String(e)),
          );
          if (r !== 'rejected') problems.push(`a release by the wrong owner was ${r}`);
          if (!(await exists(entry.file.path))) problems.push(`a rejected release removed ${entry.file.path}`);
        }
      }
      const report = await scope.close();
      if (report.released !== live.length) problems.push(`close released ${report.released}, ${live.length} were live`);
      if (report.problems.length > 0) problems.push(`close problems: ${report.problems.join('; ')}`);
      if (await exists(scope.runDir)) problems.push(`run dir ${scope.runDir} still exists: ${(await fsp.readdir(scope.runDir)).join(', ')}`);
      const names = (await fsp.readdir(dest)).sort();
      const expected = [...moved.keys()].sort();
      if (JSON.stringify(names) !== JSON.stringify(expected)) problems.push(`destination holds ${JSON.stringify(names)}, expected ${JSON.stringify(expected)}`);
      for (const [name, content] of moved) {
        const got = await fsp.readFile(path.join(dest, name), 'utf8').catch(() => '<missing>');
        if (got !== content) problems.push(`${name} holds ${JSON.stringify(got)}, expected ${JSON.stringify(content)}`);
      }
      if (problems.length > 0) throw new Error(`real fs: ${problems.join('\n')}`);
    } finally {
      await fsp.rm(base, { recursive: true, force: true });
    }
  });
}

// ----- Inflate / Compress with the node codecs -----------------------------------------------

type TranscodeAction =
  | { readonly kind: 'tar'; readonly bytes: Uint8Array }
  | { readonly kind: 'compress'; readonly n: number; readonly compression: BlobCompression }
  | { readonly kind: 'inflate'; readonly n: number; readonly compression: 'gzip' | 'sniff' | 'none' | 'zstd' }
  | { readonly kind: 'corrupt'; readonly n: number }
  | { readonly kind: 'release'; readonly n: number };

export const transcodeActionsArb: fc.Arbitrary<TranscodeAction[]> = fc.array(
  fc.oneof(
    // 'T' first: never a gzip or zstd magic number, so an uncompressed tar is never taken for a blob.
    { arbitrary: fc.uint8Array({ maxLength: 3000 }).map((b) => ({ kind: 'tar' as const, bytes: Buffer.concat([Buffer.from('T'), b]) })), weight: 3 },
    { arbitrary: fc.record({ kind: fc.constant('compress' as const), n: fc.nat(), compression: fc.constantFrom<BlobCompression>('gzip', 'gzip', 'zstd') }), weight: 3 },
    { arbitrary: fc.record({ kind: fc.constant('inflate' as const), n: fc.nat(), compression: fc.constantFrom('gzip' as const, 'sniff' as const, 'none' as const, 'zstd' as const) }), weight: 3 },
    { arbitrary: fc.record({ kind: fc.constant('corrupt' as const), n: fc.nat() }), weight: 1 },
    { arbitrary: fc.record({ kind: fc.constant('release' as const), n: fc.nat() }), weight: 1 },
  ),
  { maxLength: 14 },
);

const sha256 = (b: Uint8Array) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/**
 * `Inflate` and `Compress` through TempScope with the real node codecs (zlib, fzstd) on
 * the real fs: a compressed tar inflates back to its digest, `none` copies, `sniff`
 * recognises gzip and zstd; what cannot be done (a blob inflated as the other compression,
 * a tar inflated as gzip or zstd, a truncated blob) fails and leaves no
 * new file, live or on disk; after close the run dir is gone.
 */
export function realFsTranscodeProperty(factory: NodeScopeFactory) {
  return fc.asyncProperty(transcodeActionsArb, async (actions) => {
    const base = await fsp.mkdtemp(path.join(os.tmpdir(), 'occystrap-prop-'));
    try {
      const scope = await factory(path.join(base, 'tmp'));
      // What each live file holds: the tar's bytes, or a blob of a tar (maybe corrupted).
      const live: Array<{ file: TempFile; content: Uint8Array; tar: Uint8Array; blob: 'none' | 'gzip' | 'zstd' | 'corrupt' }> = [];
      const problems: string[] = [];
      const owner = 'filter[0]:squash';
      const runDirFiles = async () => (await fsp.readdir(scope.runDir).catch(() => [] as string[])).length;
      for (const a of actions) {
        if (a.kind === 'tar') {
          const file = await scope.perform({ _tag: 'CreateTemp', owner, purpose: 'tar' });
          await fsp.writeFile(file.path, a.bytes);
          live.push({ file, content: a.bytes, tar: a.bytes, blob: 'none' });
          continue;
        }
        if (live.length === 0) continue;
        const k = a.n % live.length;
        const source = live[k] as (typeof live)[number];
        if (a.kind === 'release') {
          await scope.perform({ _tag: 'Release', file: source.file, owner });
          live.splice(k, 1);
          continue;
        }
        if (a.kind === 'corrupt') {
          if (source.blob === 'gzip' || source.blob === 'zstd') {
            const bytes = await fsp.readFile(source.file.path);
            source.content = bytes.subarray(0, Math.floor(bytes.length / 2));
            await fsp.writeFile(source.file.path, source.content);
            source.blob = 'corrupt';
          }
          continue;
        }
        if (a.kind === 'compress' && source.blob !== 'none') continue; // only tars are compressed
        const before = { files: await runDirFiles(), live: scope.ledger.liveCount() };
        const effect =
          a.kind === 'compress'
            ? ({ _tag: 'Compress', source: source.file, owner, compression: a.compression, purpose: 'made-blob' } as const)
            : ({ _tag: 'Inflate', source: source.file, owner, compression: a.compression, purpose: 'made-tar' } as const);
        // What must come out: undefined = the effect must fail.
        let expected: { content: 'tar' | 'copy' } | undefined;
        if (a.kind === 'compress') expected = { content: 'tar' };
        else if (a.compression === 'none') expected = { content: 'copy' };
        else if ((source.blob === 'gzip' || source.blob === 'zstd') && (a.compression === source.blob || a.compression === 'sniff')) expected = { content: 'tar' };
        else if (source.blob === 'none') expected = a.compression === 'sniff' ? { content: 'copy' } : undefined;
        else expected = undefined; // a blob inflated as the other compression, or a truncated blob
        const r = await scope.perform(effect).then(
          (made) => ({ ok: true as const, made }),
          (error: unknown) => ({ ok: false as const, error }),
        );
        const what = `${a.kind} ${a.compression} of a ${source.blob} file`;
        if (r.ok) {
          const bytes = await fsp.readFile(r.made.file.path);
          if (!expected) problems.push(`${what} succeeded`);
          if (sha256(bytes) !== r.made.digest || bytes.length !== r.made.size) problems.push(`${what}: the reply's digest/size are not the new file's`);
          if (a.kind === 'compress') {
            const back = a.compression === 'gzip' ? gunzipSync(bytes) : zstdDecompress(bytes);
            if (sha256(back) !== sha256(source.tar)) problems.push(`${what}: the blob does not decompress to the tar`);
            live.push({ file: r.made.file, content: bytes, tar: source.tar, blob: a.compression });
          } else {
            const want = expected?.content === 'copy' ? source.content : source.tar;
            if (r.made.digest !== sha256(want)) problems.push(`${what}: made ${r.made.digest}, expected ${sha256(want)}`);
            // A 'none' inflate copies the file: the copy is what the source was (a gzip blob copied stays one).
            if (expected?.content === 'copy') live.push({ file: r.made.file, content: bytes, tar: source.tar, blob: source.blob });
            else live.push({ file: r.made.file, content: bytes, tar: bytes, blob: 'none' });
          }
          if (scope.ledger.entry(r.made.file.id)?.state._tag !== 'Live') problems.push(`${what}: the new file is not live`);
        } else {
          if (r.error instanceof OwnershipError) problems.push(`${what}: ${String(r.error)}`);
          if (expected) problems.push(`${what} failed: ${String(r.error)}`);
          // A failed transcode never made a file: nothing new in the ledger or the run dir.
          if (scope.ledger.liveCount() !== before.live) problems.push(`${what} failed and left ${scope.ledger.liveCount() - before.live} live file(s)`);
          if ((await runDirFiles()) !== before.files) problems.push(`${what} failed and left a file in the run dir`);
        }
        if (!(await exists(source.file.path))) problems.push(`${what}: the source is gone`);
      }
      const report = await scope.close();
      if (report.released !== live.length) problems.push(`close released ${report.released}, ${live.length} were live`);
      if (report.problems.length > 0) problems.push(`close problems: ${report.problems.join('; ')}`);
      if (await exists(scope.runDir)) problems.push(`run dir ${scope.runDir} still exists`);
      if (problems.length > 0) throw new Error(`real fs transcodes: ${problems.join('\n')}`);
    } finally {
      await fsp.rm(base, { recursive: true, force: true });
    }
  });
}
