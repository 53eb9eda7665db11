/**
 * The docker-save reader over a stream (`docker://`'s export: src/shell/inputs/docker-save.ts
 * with an `ArchiveStream`), on the real TempScope and file system: random images (layers
 * repeated, entries in random order, the config and manifest.json anywhere), random
 * chunking, with or without the daemon's inspect (`expected`), an output holding none,
 * some or all of the layers (as `info` holds all), and faults: the stream cut
 * at a random byte, one layer byte flipped, an inspect naming another image, the consumer
 * stopping at a random element.
 *
 * Properties: every temp file ends released (or handed over and released by the
 * consumer) exactly once; a run that succeeds delivers every position once, each layer's
 * file hashing to its diff_id, a repeated diff_id once with data and otherwise as a duplicate; a cut or damaged stream
 * fails with an EINPUT or EDIGEST error, never silently; whether the inspect is given
 * does not change what is delivered.
 *
 * Into a real `tar://` output (its unnamed places at the archive's end), with the inspect:
 * no layer goes through a temp file, whatever the order of the config and the layers; the
 * archive read back holds exactly the image; a cut, a flip, another image or a stop at a
 * random chunk leaves no archive and no temp file.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import * as fc from 'fast-check';
import type { Digest } from '../src/core/digest.js';
import { type ImageElement, tarOf } from '../src/core/element.js';
import { OccystrapError } from '../src/core/errors.js';
import { runPipeline } from '../src/core/pipeline/compose.js';
import type { ImageOutput, OutputSummary } from '../src/core/pipeline/types.js';
import { DockerSaveInput } from '../src/shell/inputs/docker-save.js';
import { TarOutput } from '../src/shell/outputs/tar.js';
import { TempScope } from '../src/shell/scope.js';
import { type ArchiveEntry, manifestBytes, sha256Hex, tarBytes } from '../test/integration/archive-builder.js';

const root = mkdtempSync(path.join(tmpdir(), 'occystrap-stream-prop-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));

type Fault = 'none' | 'cut' | 'flip' | 'other-image';

const specArb = fc.record({
  /** Layer contents by index into `bodies`: a repeated index is a repeated diff_id. */
  layers: fc.array(fc.nat({ max: 3 }), { minLength: 1, maxLength: 5 }),
  bodies: fc.array(fc.string({ minLength: 1, maxLength: 300 }), { minLength: 4, maxLength: 4 }),
  /** Layout: Docker 1.10–24 (`<id>/layer.tar`, `<hex>.json`) or Docker 25+ (`blobs/sha256/…`). */
  layout: fc.constantFrom('legacy' as const, 'oci' as const),
  /** A permutation key for the entries (manifest.json and the config anywhere). */
  order: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 8, maxLength: 8 }),
  chunk: fc.integer({ min: 1, max: 70_000 }),
  withExpected: fc.boolean(),
  fault: fc.constantFrom<Fault>('none', 'none', 'none', 'cut', 'flip', 'other-image'),
  cutAt: fc.double({ min: 0, max: 1, noNaN: true }),
  stopAt: fc.option(fc.nat({ max: 6 }), { nil: undefined }),
  /** The output says it holds some layers already (as `info` says it holds all). */
  holds: fc.constantFrom('none' as const, 'some' as const, 'all' as const),
});

type Spec = typeof specArb extends fc.Arbitrary<infer T> ? T : never;

interface Built {
  readonly bytes: Buffer;
  readonly diffIds: Digest[];
  readonly configDigest: Digest;
  /** Where the first layer's bytes are (to flip one). */
  readonly firstLayerAt: number;
}

async function buildArchive(spec: Spec): Promise<Built> {
  const layerTars = await Promise.all(spec.bodies.map((b, i) => tarBytes([{ name: `f${i}.txt`, data: Buffer.from(b) }])));
  const layers = spec.layers.map((i) => layerTars[i] as Buffer);
  const diffIds = layers.map((l) => `sha256:${sha256Hex(l)}` as Digest);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: diffIds } }));
  const configHex = sha256Hex(config);
  const entries: ArchiveEntry[] = [];
  const names: string[] = [];
  const seen = new Set<string>();
  layers.forEach((l, i) => {
    const hex = (diffIds[i] as string).slice(7);
    const name = spec.layout === 'oci' ? `blobs/sha256/${hex}` : `${hex.slice(0, 12)}${i}/layer.tar`;
    if (spec.layout === 'oci' && seen.has(name)) {
      names.push(name);
      return; // one blob for a repeated layer
    }
    seen.add(name);
    names.push(name);
    entries.push({ name, data: l });
  });
  const configName = spec.layout === 'oci' ? `blobs/sha256/${configHex}` : `${configHex}.json`;
  entries.push({ name: configName, data: config });
  entries.push({ name: 'manifest.json', data: manifestBytes([{ Config: configName, RepoTags: ['prop:v1'], Layers: names }]) });
  // A random order of the entries.
  const keyed = entries.map((e, i) => ({ e, k: spec.order[i % spec.order.length] as number }));
  keyed.sort((a, b) => a.k - b.k);
  const ordered = keyed.map((x) => x.e);
  const bytes = await tarBytes(ordered);
  const firstName = names[0] as string;
  let firstLayerAt = -1;
  for (let at = 0; at + 512 <= bytes.length; ) {
    const name = bytes.subarray(at, at + 100).toString('utf8').replace(/\0.*$/s, '');
    if (name === '') break;
    const size = parseInt(bytes.subarray(at + 124, at + 136).toString('utf8').replace(/\0.*$/s, '').trim() || '0', 8);
    if (name === firstName) firstLayerAt = at + 512;
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return { bytes, diffIds, configDigest: `sha256:${configHex}` as Digest, firstLayerAt };
}

/** The archive as the stream gives it: cut or with one layer byte flipped as `spec.fault` says, in `spec.chunk`-byte chunks. */
function faultedChunks(spec: Spec, built: Built): Buffer[] {
  let bytes = built.bytes;
  if (spec.fault === 'cut') bytes = bytes.subarray(0, Math.floor(bytes.length * spec.cutAt * 0.98));
  if (spec.fault === 'flip' && built.firstLayerAt >= 0) {
    bytes = Buffer.from(bytes);
    bytes[built.firstLayerAt + 100] = (bytes[built.firstLayerAt + 100] as number) ^ 0x55;
  }
  const chunks: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += spec.chunk) chunks.push(bytes.subarray(at, at + spec.chunk));
  return chunks;
}

/** An output's answer: it holds every layer, none, or those whose diff_id's hex starts with 0–7. */
const holdsOf = (holds: 'none' | 'some' | 'all') => (diffId: string) => holds === 'all' || (holds === 'some' && parseInt(diffId.charAt(7), 16) < 8);

/** Takes elements, checks each layer's file against its diff_id, releases it; stops at `stopAt`. */
function checkingOutput(record: { positions: Map<number, string>; stopped: boolean }, stopAt: number | undefined, holds: (diffId: string) => boolean): ImageOutput {
  return {
    description: 'checking',
    order: 'completion',
    wants: async (layer) => (holds(layer.diffId) ? { tar: false, blob: false } : { tar: true, blob: false }),
    async consume(elements, ctx): Promise<OutputSummary> {
      let seen = 0;
      for await (const e of elements as AsyncIterable<ImageElement>) {
        if (stopAt !== undefined && seen++ === stopAt) {
          if (e._tag === 'Layer') {
            const tar = tarOf(e.payload);
            if (tar) await ctx.effects.perform({ _tag: 'Release', file: tar.file, owner: ctx.owner });
          }
          record.stopped = true;
          break;
        }
        if (e._tag !== 'Layer') continue;
        const tar = tarOf(e.payload);
        if (tar) {
          const digest = `sha256:${createHash('sha256').update(readFileSync(tar.file.path)).digest('hex')}`;
          record.positions.set(e.layer.index, digest === e.layer.diffId ? 'data' : `bad ${digest}`);
          await ctx.effects.perform({ _tag: 'Release', file: tar.file, owner: ctx.owner });
        } else if (e.payload._tag === 'Skipped') record.positions.set(e.layer.index, e.payload.reason);
      }
      return { destination: 'checking', layers: 0, layersSkipped: 0, bytes: 0, copiedAcrossDevices: 0 };
    },
  };
}

test('docker-save over a stream: every temp file released once; success delivers each position once and verified; faults fail loudly', async () => {
  const outcomes = { ok: 0, failed: 0, stopped: 0, expected: 0 };
  await fc.assert(
    fc.asyncProperty(specArb, async (spec) => {
      const built = await buildArchive(spec);
      const chunks = faultedChunks(spec, built);
      const temp = mkdtempSync(path.join(root, 't-'));
      const scope = await TempScope.open({ parent: temp });
      let closed = 0;
      const input = new DockerSaveInput({
        stream: {
          open: async () => Readable.from(chunks),
          close: async () => void closed++,
          ...(spec.withExpected
            ? { expected: { configDigest: spec.fault === 'other-image' ? (`sha256:${'b'.repeat(64)}` as Digest) : built.configDigest, diffIds: built.diffIds, image: { name: 'prop', tag: 'v1' } } }
            : {}),
        },
        selector: { _tag: 'First' },
        label: 'docker://prop:v1',
      });
      const record = { positions: new Map<number, string>(), stopped: false };
      let error: unknown;
      try {
        await runPipeline({ input, output: checkingOutput(record, spec.stopAt, holdsOf(spec.holds)), effects: scope });
      } catch (e) {
        error = e;
      }
      const live = scope.ledger.all().filter((e) => e.state._tag === 'Live' || e.state._tag === 'Moving');
      const report = await scope.close();
      assert.deepEqual(live.map((e) => e.id), [], 'every temp file was released by the time the run returned');
      assert.equal(report.released, 0, 'close() had nothing left to release');
      assert.equal(closed, 1, 'the stream was closed once');
      assert.deepEqual(readdirSync(temp), []);
      rmSync(temp, { recursive: true, force: true });
      if (record.stopped) {
        outcomes.stopped++;
        return;
      }
      // A flipped copy of a repeated layer may go unread (another copy carried its data),
      // and so may one the output holds (nothing needs its bytes).
      const flipped = spec.fault === 'flip' && built.firstLayerAt >= 0;
      const mayGoUnread = built.diffIds.filter((d) => d === built.diffIds[0]).length > 1 || holdsOf(spec.holds)(built.diffIds[0] as string);
      const damaged = spec.fault === 'cut' || (flipped && !mayGoUnread) || (spec.fault === 'other-image' && spec.withExpected);
      if (flipped && mayGoUnread && error !== undefined) {
        assert.ok(OccystrapError.is(error) && (error.code === 'EDIGEST' || error.code === 'EINPUT'), `one explained error: ${String(error)}`);
        outcomes.failed++;
        return;
      }
      if (damaged) {
        assert.ok(error !== undefined, `a ${spec.fault} stream must fail`);
        assert.ok(OccystrapError.is(error) && (error.code === 'EINPUT' || error.code === 'EDIGEST'), `one explained error: ${String(error)}`);
        outcomes.failed++;
        return;
      }
      assert.equal(error, undefined, `a sound stream reads: ${String(error)}`);
      outcomes.ok++;
      if (spec.withExpected) outcomes.expected++;
      // Per diff_id: held by the output, every position is present; else one position
      // carries the data (whichever the stream met first) and the others are duplicates.
      for (const d of new Set(built.diffIds)) {
        const outcomes = built.diffIds.flatMap((x, i) => (x === d ? [record.positions.get(i)] : []));
        if (holdsOf(spec.holds)(d)) {
          assert.ok(outcomes.every((o) => o === 'present'), `${d} is held: ${outcomes.join(', ')}`);
          continue;
        }
        assert.deepEqual(outcomes.filter((o) => o === 'data').length, 1, `${d}: ${outcomes.join(', ')}`);
        assert.ok(outcomes.every((o) => o === 'data' || o === 'duplicate'), `${d}: ${outcomes.join(', ')}`);
      }
      assert.equal(record.positions.size, built.diffIds.length);
    }),
    { numRuns: 300 },
  );
  assert.ok(outcomes.ok > 40 && outcomes.failed > 30 && outcomes.stopped > 20 && outcomes.expected > 15, JSON.stringify(outcomes));
});

/** The layers of a docker-save archive on disk, each hashed, and its config digest (read back by the file reader). */
async function readBack(file: string, scopeParent: string): Promise<{ diffIds: string[]; configDigest: string; hashesOk: boolean }> {
  const scope = await TempScope.open({ parent: scopeParent });
  const diffIds: string[] = [];
  let configDigest = '';
  let hashesOk = true;
  const output: ImageOutput = {
    description: 'read-back',
    order: 'manifest',
    wants: async () => ({ tar: true, blob: false }),
    async consume(elements, ctx): Promise<OutputSummary> {
      for await (const e of elements as AsyncIterable<ImageElement>) {
        if (e._tag === 'Config') {
          configDigest = e.digest;
          continue;
        }
        diffIds[e.layer.index] = e.layer.diffId;
        const tar = tarOf(e.payload);
        if (!tar) continue;
        if (`sha256:${createHash('sha256').update(readFileSync(tar.file.path)).digest('hex')}` !== e.layer.diffId) hashesOk = false;
        await ctx.effects.perform({ _tag: 'Release', file: tar.file, owner: ctx.owner });
      }
      return { destination: 'read-back', layers: 0, layersSkipped: 0, bytes: 0, copiedAcrossDevices: 0 };
    },
  };
  try {
    await runPipeline({ input: new DockerSaveInput({ path: file, selector: { _tag: 'First' } }), output, effects: scope });
  } finally {
    await scope.close();
  }
  return { diffIds, configDigest, hashesOk };
}

/** The names of a plain ustar archive's entries, in order. */
function entryNames(bytes: Buffer): string[] {
  const names: string[] = [];
  for (let at = 0; at + 512 <= bytes.length; ) {
    const name = bytes.subarray(at, at + 100).toString('utf8').replace(/\0.*$/s, '');
    if (name === '') break;
    names.push(name);
    const size = parseInt(bytes.subarray(at + 124, at + 136).toString('utf8').replace(/\0.*$/s, '').trim() || '0', 8);
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return names;
}

test('docker-save over a stream into tar://: each layer goes straight into the archive (no temp file), named by its hash; faults and stops leave nothing', async () => {
  const outcomes = { ok: 0, failed: 0, aborted: 0, configAfterALayer: 0 };
  await fc.assert(
    fc.asyncProperty(specArb, fc.option(fc.nat({ max: 40 }), { nil: undefined }), async (spec, abortAtChunk) => {
      const built = await buildArchive(spec);
      const chunks = faultedChunks(spec, built);
      const abort = new AbortController();
      async function* body() {
        for (const [i, c] of chunks.entries()) {
          if (i === abortAtChunk) abort.abort(new Error('stopped'));
          yield c;
        }
      }
      const temp = mkdtempSync(path.join(root, 't-'));
      const outDir = mkdtempSync(path.join(root, 'o-'));
      const out = path.join(outDir, 'out.tar');
      const scope = await TempScope.open({ parent: temp });
      const input = new DockerSaveInput({
        stream: {
          open: async () => Readable.from(body()),
          expected: { configDigest: spec.fault === 'other-image' ? (`sha256:${'b'.repeat(64)}` as Digest) : built.configDigest, diffIds: built.diffIds, image: { name: 'prop', tag: 'v1' } },
        },
        selector: { _tag: 'First' },
        label: 'docker://prop:v1',
      });
      let error: unknown;
      try {
        await runPipeline({ input, output: new TarOutput({ path: out }), effects: scope, signal: abort.signal });
      } catch (e) {
        error = e;
      }
      const created = scope.ledger.all();
      const live = created.filter((e) => e.state._tag === 'Live' || e.state._tag === 'Moving');
      const report = await scope.close();
      assert.deepEqual(live.map((e) => e.id), [], 'every temp file was released by the time the run returned');
      assert.equal(report.released, 0, 'close() had nothing left to release');
      assert.deepEqual(readdirSync(temp), []);
      // Only the archive and (Docker 25+'s layout) the config blob are temp files: no layer is spooled.
      const spooledLayers = created.filter((e) => e.purpose.startsWith('tar-') && !e.purpose.startsWith(`tar-${built.configDigest.slice(7, 23)}`));
      assert.deepEqual(spooledLayers.map((e) => e.purpose), [], 'no layer went through a temp file');
      rmSync(temp, { recursive: true, force: true });
      const written = readdirSync(outDir);
      if (error !== undefined) {
        assert.ok(OccystrapError.is(error) || abort.signal.aborted, `one explained error: ${String(error)}`);
        assert.deepEqual(written, [], 'a failed run leaves no archive');
        if (abort.signal.aborted) outcomes.aborted++;
        else outcomes.failed++;
        rmSync(outDir, { recursive: true, force: true });
        return;
      }
      const flipped = spec.fault === 'flip' && built.firstLayerAt >= 0;
      const mayGoUnread = built.diffIds.filter((d) => d === built.diffIds[0]).length > 1;
      assert.ok(!(spec.fault === 'cut' || spec.fault === 'other-image' || (flipped && !mayGoUnread)), `a ${spec.fault} stream must fail`);
      assert.deepEqual(written, ['out.tar']);
      const back = await readBack(out, root);
      assert.deepEqual(back.diffIds, built.diffIds);
      assert.equal(back.configDigest, built.configDigest);
      assert.ok(back.hashesOk, 'every layer in the archive hashes to its diff_id');
      // Nothing but the image: each distinct layer once, the config, manifest.json, repositories (no dropped entry left).
      const distinct = [...new Set(built.diffIds)].map((d) => d.slice(7));
      const expectedNames = [...distinct.flatMap((h) => [`${h}/`, `${h}/layer.tar`]), `${built.configDigest.slice(7)}.json`, 'manifest.json', 'repositories'].sort();
      assert.deepEqual(entryNames(readFileSync(out)).sort(), expectedNames);
      const configAt = built.bytes.indexOf(Buffer.from(spec.layout === 'oci' ? `blobs/sha256/${built.configDigest.slice(7)}` : `${built.configDigest.slice(7)}.json`));
      if (configAt > built.firstLayerAt) outcomes.configAfterALayer++;
      outcomes.ok++;
      rmSync(outDir, { recursive: true, force: true });
    }),
    { numRuns: 250 },
  );
  assert.ok(outcomes.ok > 60 && outcomes.failed > 20 && outcomes.aborted > 20 && outcomes.configAfterALayer > 15, JSON.stringify(outcomes));
});
