/**
 * The registry destination (src/shell/outputs/registry.ts) on the real copy loop, over the
 * memory file system and the real TempScope, pushing into a registry kept in memory with
 * injected faults (HEAD, mount, upload, config, manifest, a streamed upload refused or
 * failing at its end), blobs already present, early aborts and scheduler-chosen
 * interleavings. The forms inputs give layers as tars (so the copy loop compresses them),
 * as blobs (passed through, fed to the stream the destination offers while they are
 * written) or both.
 *
 * Properties: every temp file ends released once (the destination takes each blob and
 * releases it, whether it was uploaded, found present or failed); a run that succeeds put
 * exactly one manifest, naming for each position a blob the registry holds; a run that
 * fails put no manifest and left no upload session open; no streamed upload is left
 * neither finished nor cancelled, and a streamed upload that fails only costs sending the
 * file.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as fc from 'fast-check';
import type { Digest } from '../src/core/digest.js';
import type { Effects, OwnershipEffect, ReplyOf } from '../src/core/ownership.js';
import { runPipeline } from '../src/core/pipeline/compose.js';
import { RegistryOutput, type RegistryPush } from '../src/shell/outputs/registry.js';
import type { StreamedUpload } from '../src/shell/registry/push.js';
import { formsDescriptors, formsInput, type FormsLayerSpec, type FormsWorld } from './support/forms-pipeline.js';
import { invariantAfterClose, releasedFilesAreGone, settleScheduled, withDeadline } from './support/invariants.js';
import { MemoryCodecs, shaOf } from './support/memory-codecs.js';
import { MemoryFs } from './support/memory-fs.js';
import { InjectedError } from './support/model-pipeline.js';
import { realScope } from './support/scopes.js';

/** `stream`: the registry will not open a streamed upload; `streamput`: the streamed upload fails at its end. */
type RegistryOp = 'exists' | 'mount' | 'upload' | 'config' | 'manifest' | 'stream' | 'streamput';
const STREAM_OPS: readonly RegistryOp[] = ['stream', 'streamput'];

interface RegistrySpec {
  readonly layers: readonly FormsLayerSpec[];
  readonly inputKind: 'asked' | 'tars' | 'random';
  readonly compression: 'gzip' | 'zstd';
  readonly concurrency: number;
  readonly parallelism: number;
  /** Layer positions whose source blob the registry holds before the run. */
  readonly present: readonly number[];
  readonly faults: ReadonlyArray<{ readonly op: RegistryOp; readonly skip: number }>;
  readonly abort: boolean;
}

/** A registry in memory: blobs by digest, manifests put, upload sessions open; faults on demand. */
class MemoryRegistry implements RegistryPush {
  readonly blobs = new Map<string, number>();
  readonly manifests: { reference: string; bytes: Uint8Array }[] = [];
  openSessions = 0;
  /** Streamed uploads neither finished nor cancelled. */
  readonly openStreams = new Set<object>();
  streamedBlobs = 0;
  readonly problems: string[] = [];
  private readonly faults: { op: RegistryOp; skip: number }[];

  constructor(
    private readonly fs: MemoryFs,
    private readonly s: fc.Scheduler,
    faults: RegistrySpec['faults'],
  ) {
    this.faults = faults.map((f) => ({ ...f }));
  }

  private async step(op: RegistryOp): Promise<void> {
    await this.s.schedule(Promise.resolve(), `registry ${op}`);
    if (this.faulted(op)) throw new InjectedError(`registry failed in ${op}`);
  }

  private faulted(op: RegistryOp): boolean {
    const f = this.faults.find((x) => x.op === op);
    if (!f) return false;
    if (f.skip > 0) {
      f.skip--;
      return false;
    }
    this.faults.splice(this.faults.indexOf(f), 1);
    return true;
  }

  /** As the real pusher: refused or failed → `done` false (the file is sent instead); never rejects. */
  streamUpload(digest: Digest, size: number): StreamedUpload {
    const refused = this.faulted('stream');
    const session = {};
    this.openStreams.add(session);
    const chunks: Uint8Array[] = [];
    let settle: (ok: boolean) => void = () => undefined;
    let settled = false;
    // The input's side: it may go on writing after the destination aborted the stream, never after `end`.
    let ended = false;
    const done = new Promise<boolean>((resolve) => (settle = resolve)).then((ok) => {
      this.openStreams.delete(session);
      return ok;
    });
    const finish = (ok: boolean) => {
      if (settled) return;
      settled = true;
      settle(ok);
    };
    // The session opens while the first bytes arrive; a registry that refuses it fails the upload.
    void this.s.schedule(Promise.resolve(), 'registry stream open').then(() => {
      if (refused) finish(false);
    });
    return {
      write: async (chunk) => {
        if (ended) this.problems.push(`stream of ${digest}: written after it ended`);
        if (settled) return;
        chunks.push(chunk.slice());
        await this.s.schedule(Promise.resolve(), 'registry stream write');
      },
      end: () => {
        if (ended) this.problems.push(`stream of ${digest}: ended twice`);
        ended = true;
        if (settled) return;
        void this.s.schedule(Promise.resolve(), 'registry stream put').then(() => {
          if (this.faulted('streamput')) return finish(false);
          const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
          let at = 0;
          for (const c of chunks) {
            all.set(c, at);
            at += c.length;
          }
          const text = new TextDecoder().decode(all);
          // The registry checks the digest at the end, as distribution does.
          if (all.length !== size || shaOf(text) !== digest) return finish(false);
          this.blobs.set(digest, size);
          this.streamedBlobs++;
          finish(true);
        });
      },
      abort: () => finish(false),
      done,
    };
  }

  async exists(digest: Digest): Promise<number | undefined> {
    await this.step('exists');
    return this.blobs.get(digest);
  }

  async mount(): Promise<boolean> {
    await this.step('mount');
    return false;
  }

  async uploadFile(digest: Digest, size: number, path: string): Promise<void> {
    this.openSessions++;
    try {
      await this.step('upload');
      // The destination must still own the file it uploads: it is there, and it is the blob named.
      const content = await this.fs.readFile(path);
      if (content.length !== size || shaOf(content) !== digest) this.problems.push(`upload of ${digest}: the file holds other bytes (${content.length} bytes, ${shaOf(content)})`);
      this.blobs.set(digest, size);
    } finally {
      // The real pusher cancels its session when an upload fails.
      this.openSessions--;
    }
  }

  async ensureBytes(bytes: Uint8Array, digest: Digest): Promise<boolean> {
    await this.step('config');
    if (this.blobs.has(digest)) return false;
    this.blobs.set(digest, bytes.length);
    return true;
  }

  async putManifest(reference: string, _mediaType: string, bytes: Uint8Array): Promise<Digest> {
    await this.step('manifest');
    this.manifests.push({ reference, bytes });
    return shaOf(new TextDecoder().decode(bytes));
  }

  async cancelOpenUploads(): Promise<void> {
    this.openSessions = 0;
    this.openStreams.clear();
  }
}

/** BROKEN on purpose (test of the test): drops the output's first Release of a blob. */
class ForgetfulEffects implements Effects {
  private dropped = false;
  constructor(private readonly inner: Effects) {}
  perform<E extends OwnershipEffect>(e: E): Promise<ReplyOf<E>> {
    if (!this.dropped && e._tag === 'Release' && e.owner === 'output') {
      this.dropped = true;
      return Promise.resolve(undefined as ReplyOf<E>);
    }
    return this.inner.perform(e);
  }
}

const layersArb = (n: number) =>
  fc.array(
    fc.record({ files: fc.integer({ min: 0, max: 3 }), compression: fc.constantFrom('gzip' as const, 'zstd' as const, 'none' as const), randomForm: fc.constantFrom('tar' as const, 'blob' as const, 'both' as const) }),
    { minLength: n, maxLength: n },
  ).map((ls) => ls.map((l): FormsLayerSpec => ({ files: l.files, repeatOf: undefined, compression: l.compression, randomForm: l.randomForm })));

const specArb: fc.Arbitrary<RegistrySpec> = fc.integer({ min: 0, max: 4 }).chain((n) =>
  fc.record({
    layers: layersArb(n),
    inputKind: fc.constantFrom('asked' as const, 'tars' as const, 'random' as const),
    compression: fc.constantFrom('gzip' as const, 'zstd' as const),
    concurrency: fc.integer({ min: 1, max: 3 }),
    parallelism: fc.integer({ min: 1, max: 3 }),
    present: fc.subarray(Array.from({ length: n }, (_, i) => i)),
    faults: fc.oneof(
      { arbitrary: fc.constant([]), weight: 3 },
      { arbitrary: fc.array(fc.record({ op: fc.constantFrom<RegistryOp>('exists', 'mount', 'upload', 'upload', 'config', 'manifest', 'stream', 'streamput'), skip: fc.nat({ max: 3 }) }), { minLength: 1, maxLength: 2 }), weight: 2 },
    ),
    abort: fc.oneof({ arbitrary: fc.constant(false), weight: 6 }, { arbitrary: fc.constant(true), weight: 1 }),
  }),
);

interface Stats {
  ok: number;
  failed: number;
  uploaded: number;
  presentSkipped: number;
  streamed: number;
}

async function checkRun(spec: RegistrySpec, s: fc.Scheduler, stats: Stats, broken = false): Promise<string[]> {
  const fs = new MemoryFs({ dirs: ['/tmp', '/out'], scheduler: s });
  const codecs = new MemoryCodecs(fs);
  const world: FormsWorld = { fs, problems: [] };
  const scope = await withDeadline(s.waitFor(realScope(fs, '/tmp', codecs)), 5000, 'scope open');
  const registry = new MemoryRegistry(fs, s, spec.faults);
  const descriptors = formsDescriptors(spec.layers);
  for (const i of spec.present) registry.blobs.set(descriptors[i]?.blob?.digest as string, descriptors[i]?.blob?.size as number);
  const output = new RegistryOutput({
    pusher: registry,
    label: 'registry://mem/forms:v1',
    reference: { tag: 'v1' },
    compression: spec.compression,
    format: 'auto',
    concurrency: spec.concurrency,
    registry: 'mem',
    repository: 'forms',
    close: async () => {},
    stats: () => ({ retries: 0, rateLimited: 0, requests: 0, uploaded: 0 }),
  });
  const outer = new AbortController();
  if (spec.abort) void s.schedule(Promise.resolve(), 'abort').then(() => outer.abort(new InjectedError('aborted by the user')));
  const context = () => `spec: ${JSON.stringify(spec)}\nblobs: ${JSON.stringify([...registry.blobs.keys()])}`;
  const run = runPipeline({
    input: formsInput(world, { kind: spec.inputKind, layers: spec.layers, throwAtLayer: undefined }),
    output,
    effects: broken ? new ForgetfulEffects(scope) : scope,
    signal: outer.signal,
    parallelism: spec.parallelism,
  });
  const outcome = await settleScheduled(s, run, () => undefined, context);
  const violations = [...world.problems, ...registry.problems, ...releasedFilesAreGone(scope, fs)];
  const unclaimed = scope.ledger.all().filter((e) => e.state._tag === 'Live' || e.state._tag === 'Moving');
  if (unclaimed.length > 0) violations.push(`still owned after the run returned: ${unclaimed.map((e) => `#${e.id} ${e.purpose}`).join(', ')}`);
  const report = await withDeadline(s.waitFor(scope.close()), 5000, 'scope.close()', context);
  await withDeadline(s.waitIdle(), 5000, 'idle after close', context);
  violations.push(...invariantAfterClose(scope, fs, report));
  if (report.released !== 0) violations.push(`scope.close() had to release ${report.released} file(s)`);
  if (fs.filesUnder('/tmp').length > 0) violations.push(`files left under /tmp: ${fs.filesUnder('/tmp').join(', ')}`);
  if (outcome.ok) {
    stats.ok++;
    stats.presentSkipped += outcome.value.layersSkipped;
    if (registry.manifests.length !== 1) violations.push(`a successful push put ${registry.manifests.length} manifests`);
    const manifest = JSON.parse(new TextDecoder().decode(registry.manifests[0]?.bytes ?? new Uint8Array())) as { config: { digest: string }; layers: { digest: string; size: number }[] };
    if (manifest.layers?.length !== spec.layers.length) violations.push(`the manifest names ${manifest.layers?.length} layers for ${spec.layers.length}`);
    for (const l of manifest.layers ?? []) if (registry.blobs.get(l.digest) !== l.size) violations.push(`the manifest names ${l.digest} (${l.size} bytes), which the registry does not hold`);
    if (!registry.blobs.has(manifest.config?.digest)) violations.push('the manifest names a config the registry does not hold');
  } else {
    stats.failed++;
    const e = outcome.error;
    const expected = e instanceof InjectedError || (spec.abort && (e as { code?: string })?.code === 'EABORT');
    if (!expected) violations.push(`the push failed with an error nobody injected: ${(e as Error)?.stack ?? String(e)}`);
    if (registry.manifests.length > 0) violations.push('a failed push put a manifest');
    // A streamed upload that fails or is refused only costs sending the file.
    if (spec.faults.every((f) => STREAM_OPS.includes(f.op)) && !spec.abort) violations.push(`a push without faults (other than in streamed uploads) failed: ${String(e)}`);
  }
  if (registry.openSessions !== 0) violations.push(`${registry.openSessions} upload session(s) left open`);
  if (registry.openStreams.size !== 0) violations.push(`${registry.openStreams.size} streamed upload(s) neither finished nor cancelled`);
  stats.uploaded += registry.blobs.size;
  stats.streamed += registry.streamedBlobs;
  return violations;
}

test('registry destination: every temp file released once; a push succeeds with one manifest of blobs the registry holds, or fails with none and no open session', async () => {
  const stats: Stats = { ok: 0, failed: 0, uploaded: 0, presentSkipped: 0, streamed: 0 };
  await fc.assert(
    fc.asyncProperty(specArb, fc.scheduler(), async (spec, s) => {
      const violations = await checkRun(spec, s, stats);
      assert.deepEqual(violations, [], `spec: ${JSON.stringify(spec)}`);
    }),
    { numRuns: 1000 },
  );
  assert.ok(stats.ok > 250 && stats.failed > 100, `runs: ${JSON.stringify(stats)}`);
  assert.ok(stats.presentSkipped > 10, `blobs found present (not fetched): ${JSON.stringify(stats)}`);
  assert.ok(stats.streamed > 100, `blobs uploaded while fetched: ${JSON.stringify(stats)}`);
});

test('test of the test: a destination that forgets one release is caught', async () => {
  let caught = 0;
  await fc.assert(
    fc.asyncProperty(
      specArb.filter((s) => s.layers.length > 0 && s.faults.length === 0 && !s.abort && s.present.length === 0),
      fc.scheduler(),
      async (spec, s) => {
        const violations = await checkRun(spec, s, { ok: 0, failed: 0, uploaded: 0, presentSkipped: 0, streamed: 0 }, true);
        if (violations.some((v) => /still owned after the run returned|scope.close\(\) had to release/.test(v))) caught++;
      },
    ),
    { numRuns: 60 },
  );
  assert.equal(caught, 60, 'every run with a forgotten release must be reported');
});
