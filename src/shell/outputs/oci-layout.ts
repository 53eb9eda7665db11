/**
 * `ocidir://DIR[:TAG]` output: an OCI image layout (image-spec v1.1 `image-layout.md`).
 *
 * Layers are stored as blobs, `blobs/<alg>/<hex>`: a blob that came from the source
 * (registry, another layout) is moved in untouched, so its digest is the source's; a
 * layer that arrives as a tar (`tar://` sources, or rewritten by a filter) is compressed
 * by the copy loop (`--compression`, gzip by default). Every blob lands by rename; the
 * image manifest (OCI, Docker layer types mapped to their OCI equivalents as skopeo
 * does) is written after all its blobs, and `index.json` last, by temp + rename under
 * the layout's lock, merged with the images and tags already there.
 *
 * A blob already in the layout (a regular file that hashes to its digest, checked once
 * per run and then by file identity) is not fetched again. A failed or interrupted run
 * removes what it added that no manifest in `index.json` names, and the layout
 * directory if it created it. The layout's contents are not trusted: `blobs`, its
 * algorithm directories, `index.json` and `oci-layout` must not be symbolic links, files
 * are read without following links (fs/store-fs.ts), and every digest is validated before
 * it becomes a path.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import { describeDecodeError, MAX_JSON_BYTES } from '../../core/codecs/common.js';
import { type Digest, digestAlgorithm, parseDigest } from '../../core/digest.js';
import { type BlobDescriptor, blobOf, type ConfigElement, type DataPayload, type LayerDescriptor, tarOf } from '../../core/element.js';
import { OccystrapError, outputError, usageError } from '../../core/errors.js';
import { layerCompression } from '../../core/media-types.js';
import type { BlobCompression, Effects } from '../../core/ownership.js';
import { type CommittedImage, CopyOutput, type ImageDestination, type PutLayerResult } from '../../core/pipeline/copy-image.js';
import type { ImageOutput, StageContext } from '../../core/pipeline/types.js';
import { blobPath, type OciLayoutReference, ociLayoutFileBytes } from '../../core/plans/oci-layout.js';
import { blobsNamedByManifest, decodeLayoutIndex, defaultRefName, imageManifestBytes, type LayoutIndex, mergeLayoutIndex, ociLayerMediaType } from '../../core/plans/oci-layout-write.js';
import { publishMode, writeFileAtomically } from '../fs/atomic.js';
import { describeKind, type EntryKind, lstatEntry, readRegularFile, StoreEntryError, VerifiedFiles } from '../fs/store-fs.js';
import { acquireStoreLock, type StoreLock, StoreLockError } from '../fs/store-lock.js';
import { trackPartialOutput } from '../partial-outputs.js';
import { InFlight, StoreRoot } from '../fs/store-root.js';
import type { Target, TransportSettings } from '../transports/types.js';

export interface OciLayoutOutputOptions {
  readonly path: string;
  /** The `ref.name` to write; default: the source's tag (see {@link defaultRefName}). */
  readonly tag?: string;
  /** How layers that arrive as a tar are compressed (default gzip). */
  readonly compression?: BlobCompression;
  /** Layers stored at once (default 4; the CLI passes -j). */
  readonly concurrency?: number;
  readonly label?: string;
  /** How long to wait for another run's lock (default 60 s). */
  readonly lockTimeoutMs?: number;
}

const INDEX = 'index.json';
const MARKER = 'oci-layout';
const MARKER_CAP = 4096;
/** Manifests and indexes a rollback reads to learn which blobs are in use. */
const MAX_DOCUMENTS_WALKED = 10_000;

interface LayoutRun {
  readonly root: string;
  /** The top directory this run created, when it created the layout. */
  createdRoot: string | undefined;
  /** Files and directories this run created, in creation order. */
  readonly added: string[];
  /** Layout operations under way; a forced rollback waits a moment for them. */
  readonly inFlight: InFlight;
  lock: StoreLock | undefined;
  undoing: Promise<void> | undefined;
  untrack: () => void;
  /** The last store operation per blob path (two layers with one blob go one after the other). */
  readonly storing: Map<string, Promise<void>>;
}

/** The `ocidir://` destination operations. */
export class OciLayoutDestination implements ImageDestination<BlobDescriptor> {
  readonly description: string;
  readonly order = 'completion' as const;
  readonly needs: { readonly _tag: 'Blob'; readonly compression: BlobCompression };
  readonly concurrency: number;
  private readonly store: StoreRoot;
  /** Blobs (by digest) whose file hashed to the digest, with that file's identity. */
  private readonly verified = new VerifiedFiles();
  private run: LayoutRun | undefined;

  constructor(private readonly options: OciLayoutOutputOptions) {
    this.description = options.label ?? `ocidir://${options.path}${options.tag ? `:${options.tag}` : ''}`;
    this.store = new StoreRoot(options.path, this.description);
    this.needs = { _tag: 'Blob', compression: options.compression ?? 'gzip' };
    this.concurrency = Math.max(1, options.concurrency ?? 4);
  }

  /** The source's blob is present when `blobs/<alg>/<hex>` is a regular file that hashes to its digest. */
  async has(layer: LayerDescriptor): Promise<boolean> {
    const blob = layer.blob;
    if (!blob || E.isLeft(parseDigest(blob.digest))) return false;
    const root = await this.store.resolve();
    try {
      return root !== undefined && (await this.blobVerified(root, blob.digest, blob.size));
    } catch (e) {
      // A bad entry (a linked blobs dir) is refused when the run begins, with the output's own message.
      if (OccystrapError.is(e) && e.code === 'EOUTPUT') return false;
      throw e;
    }
  }


  private refuse(name: string, problem: string, todo: string): Error {
    return outputError(`${this.description}: ${name} ${problem}; ${todo}`);
  }

  private badEntry(name: string, kind: EntryKind, wanted: 'file' | 'directory'): Error {
    if (kind === 'symlink') return this.refuse(name, 'is a symbolic link', `occystrap does not read or write through links in a layout: replace it with a real ${wanted === 'file' ? 'file' : 'directory'}`);
    return this.refuse(name, `is ${describeKind(kind)}, not a ${wanted === 'file' ? 'regular file' : 'directory'}`, 'remove it');
  }

  /** `blobs` and `blobs/<alg>` must be real directories (or missing). */
  private async blobDirsState(root: string, algorithm: string): Promise<'missing' | 'directory'> {
    for (const rel of ['blobs', `blobs/${algorithm}`]) {
      const entry = await lstatEntry(path.join(root, rel));
      if (entry.kind === 'missing') return 'missing';
      if (entry.kind !== 'directory') throw this.badEntry(rel, entry.kind, 'directory');
    }
    return 'directory';
  }

  /** Create `rel` (a directory under the root) unless it is there; refuse anything else. */
  private async ensureDir(run: LayoutRun, rel: string): Promise<void> {
    const full = path.join(run.root, rel);
    const entry = await lstatEntry(full);
    if (entry.kind === 'directory') return;
    if (entry.kind !== 'missing') throw this.badEntry(rel, entry.kind, 'directory');
    try {
      await fs.mkdir(full);
      run.added.push(full);
    } catch (e) {
      if ((e as { code?: string }).code !== 'EEXIST') throw e;
      const again = await lstatEntry(full);
      if (again.kind !== 'directory') throw this.badEntry(rel, again.kind, 'directory');
    }
  }

  /**
   * Whether the blob is in the layout: a regular file of `size` bytes that hashes to
   * `digest`. Hashed once per run; later asks compare the file's identity.
   */
  private blobVerified(root: string, digest: Digest, size: number | undefined): Promise<boolean> {
    return this.verified.verify(digest, digest, async () => {
      // Only sha256 can be checked here; other blobs are fetched (and verified by the input).
      if (digestAlgorithm(digest) !== 'sha256') return undefined;
      if ((await this.blobDirsState(root, 'sha256')) === 'missing') return undefined;
      const file = path.join(root, blobPath(digest));
      const entry = await lstatEntry(file);
      if (entry.kind !== 'file' || !entry.stats) return undefined;
      if (size !== undefined && entry.stats.size !== size) return undefined;
      return { file, stats: entry.stats };
    });
  }

  private current(): LayoutRun {
    if (!this.run) throw new Error(`${this.description}: no run under way`);
    return this.run;
  }


  /** Create the layout if needed (marker, blobs dirs); check `index.json` before any layer is fetched. */
  async begin(_config: ConfigElement, ctx: StageContext): Promise<void> {
    if (this.run) throw outputError(`${this.description}: a second config arrived in one run`);
    const { root, created: createdRoot } = await this.store.ensure('; give a directory for the layout');
    const run: LayoutRun = { root, createdRoot, added: [], inFlight: new InFlight(), lock: undefined, undoing: undefined, untrack: () => undefined, storing: new Map() };
    this.run = run;
    run.untrack = trackPartialOutput(() => this.undo(run, true));
    await run.inFlight.track(async () => {
      await this.readIndex(root);
      await this.ensureMarker(run, ctx);
      await this.ensureDir(run, 'blobs');
      await this.ensureDir(run, 'blobs/sha256');
    });
  }

  /** `oci-layout` must say imageLayoutVersion; written when missing. */
  private async ensureMarker(run: LayoutRun, ctx: StageContext): Promise<void> {
    const file = path.join(run.root, MARKER);
    const entry = await lstatEntry(file);
    if (entry.kind === 'missing') {
      await writeFileAtomically(ctx.effects, ctx.owner, file, ociLayoutFileBytes(), 'oci-layout');
      run.added.push(file);
      return;
    }
    if (entry.kind !== 'file') throw this.badEntry(MARKER, entry.kind, 'file');
    let version: unknown;
    try {
      const bytes = await readRegularFile(file, MARKER_CAP);
      version = (JSON.parse(Buffer.from(bytes ?? new Uint8Array()).toString('utf8')) as { imageLayoutVersion?: unknown } | null)?.imageLayoutVersion;
    } catch (e) {
      if (e instanceof StoreEntryError && e.kind === 'symlink') throw this.badEntry(MARKER, 'symlink', 'file');
      version = undefined;
    }
    if (typeof version !== 'string') throw this.refuse(MARKER, 'is not an OCI layout marker (no imageLayoutVersion)', `this is not an OCI image layout: fix or remove ${MARKER}, or give another directory`);
  }

  /** `index.json` decoded, or undefined when there is none. */
  private async readIndex(root: string): Promise<LayoutIndex | undefined> {
    let bytes: Uint8Array | undefined;
    try {
      bytes = await readRegularFile(path.join(root, INDEX), MAX_JSON_BYTES);
    } catch (e) {
      if (!(e instanceof StoreEntryError)) throw e;
      if (e.kind === 'too big') throw this.refuse(INDEX, `is over ${MAX_JSON_BYTES} bytes`, `fix or remove ${INDEX}`);
      if (e.kind === 'changed' || e.kind === 'missing') throw this.refuse(INDEX, 'changed while it was read', 'run again');
      throw this.badEntry(INDEX, e.kind, 'file');
    }
    if (bytes === undefined) return undefined;
    const index = decodeLayoutIndex(bytes);
    if (E.isLeft(index)) throw outputError(`${this.description}: ${describeDecodeError(index.left)}; fix or remove ${INDEX}`);
    return index.right;
  }

  async putConfig(config: ConfigElement, ctx: StageContext): Promise<void> {
    const run = this.current();
    await run.inFlight.track(() => this.storeDocument(run, this.validDigest(config.digest, 'the config'), config.raw, 'config', ctx.effects, ctx.owner));
  }

  private validDigest(digest: string, what: string): Digest {
    const parsed = parseDigest(digest);
    if (E.isLeft(parsed)) throw outputError(`${this.description}: ${what} has a bad digest ${JSON.stringify(digest.slice(0, 80))}: ${parsed.left.reason}`);
    return parsed.right;
  }

  /** Write a small blob (config, manifest) by temp + rename unless an identical one is there. */
  private async storeDocument(run: LayoutRun, digest: Digest, bytes: Uint8Array, purpose: string, effects: Effects, owner: string): Promise<void> {
    await this.ensureDir(run, `blobs/${digestAlgorithm(digest)}`);
    const file = path.join(run.root, blobPath(digest));
    const entry = await lstatEntry(file);
    if (entry.kind === 'directory') throw this.refuse(blobPath(digest), 'is a directory', 'remove it and run again');
    if (entry.kind === 'file' && (await this.blobVerified(run.root, digest, bytes.length))) return;
    await writeFileAtomically(effects, owner, file, bytes, purpose);
    if (entry.kind === 'missing') run.added.push(file);
  }

  async putLayer(layer: LayerDescriptor, payload: DataPayload, ctx: StageContext): Promise<PutLayerResult<BlobDescriptor>> {
    const { effects, owner } = ctx;
    const run = this.current();
    const tar = tarOf(payload);
    const blob = blobOf(payload);
    // Only the blob is stored; a tar that came along is not needed.
    if (tar) await effects.perform({ _tag: 'Release', file: tar.file, owner }).catch(() => undefined);
    if (!blob) throw outputError(`${this.description}: layer ${layer.index} arrived without its blob`);
    const releaseBlob = () => effects.perform({ _tag: 'Release', file: blob.file, owner }).catch(() => undefined);
    let digest: Digest;
    try {
      digest = this.validDigest(blob.digest, `layer ${layer.index}`);
    } catch (e) {
      await releaseBlob();
      throw e;
    }
    const relative = blobPath(digest);
    const destination = path.join(run.root, relative);
    const stored: BlobDescriptor = { digest, size: blob.size, mediaType: ociLayerMediaType(blob.mediaType, blob.compression) };
    const store = async (): Promise<PutLayerResult<BlobDescriptor>> => {
      try {
        await this.ensureDir(run, 'blobs');
        await this.ensureDir(run, `blobs/${digestAlgorithm(digest)}`);
        const before = await lstatEntry(destination);
        if (before.kind === 'directory') throw this.refuse(relative, 'is a directory', 'remove it and run again');
        if (before.kind === 'file' && (await this.blobVerified(run.root, digest, blob.size))) {
          await effects.perform({ _tag: 'Release', file: blob.file, owner });
          return { stored, bytes: 0, kept: true };
        }
        // Missing, or not this blob (garbage, a link): the rename replaces the entry itself, never a link's target.
        await publishMode(blob.file.path);
        const reply = await effects.perform({ _tag: 'MoveIntoPlace', file: blob.file, owner, destination });
        if (before.kind === 'missing') run.added.push(destination);
        const now = await lstatEntry(destination);
        if (now.stats && now.kind === 'file' && digestAlgorithm(digest) === 'sha256') this.verified.remember(digest, now.stats);
        return { stored, bytes: blob.size, copiedAcrossDevices: reply.copied };
      } catch (e) {
        await releaseBlob();
        throw e;
      }
    };
    const previous = run.storing.get(relative) ?? Promise.resolve();
    const task = previous.then(store, store);
    run.storing.set(
      relative,
      task.then(
        () => undefined,
        () => undefined,
      ),
    );
    return run.inFlight.track(() => task);
  }

  async commit(image: CommittedImage<BlobDescriptor>, ctx: StageContext): Promise<{ destination: string }> {
    const { effects, owner } = ctx;
    const run = this.current();
    const { root } = run;
    const config = image.config;
    const configDigest = this.validDigest(config.digest, 'the config');
    const descriptors: BlobDescriptor[] = [];
    for (const record of image.layers) {
      if (record._tag === 'Stored') descriptors.push(record.stored);
      else if (record._tag === 'Duplicate') descriptors.push(descriptors[record.of] as BlobDescriptor);
      else {
        const blob = record.layer.blob;
        if (!blob) throw outputError(`${this.description}: layer ${record.layer.index} arrived without data`);
        const digest = this.validDigest(blob.digest, `layer ${record.layer.index}`);
        descriptors.push({ digest, size: blob.size, mediaType: ociLayerMediaType(blob.mediaType, layerCompression(blob.mediaType) ?? 'none') });
      }
    }
    const manifest = imageManifestBytes({ config: { digest: configDigest, size: config.raw.length }, layers: descriptors });
    const manifestDigest = `sha256:${createHash('sha256').update(manifest).digest('hex')}` as Digest;
    await run.inFlight.track(() => this.storeDocument(run, manifestDigest, manifest, 'manifest', effects, owner));

    // The read-merge-write of index.json is one critical section per layout.
    run.lock = await this.lock(root, ctx.signal);
    const wanted = new Map<Digest, number>([[configDigest, config.raw.length], [manifestDigest, manifest.length]]);
    for (const d of descriptors) wanted.set(d.digest, d.size);
    for (const [digest, size] of wanted) {
      if (digestAlgorithm(digest) !== 'sha256') continue;
      if (!(await this.blobVerified(root, digest, size))) {
        throw outputError(`${this.description}: ${blobPath(digest)} is missing from the layout or changed while the image was written; run again`);
      }
    }
    // Again under the lock: a concurrent run that failed may have removed a marker both wrote.
    await this.ensureMarker(run, ctx);
    const index = await this.readIndex(root);
    const refName = this.options.tag ?? defaultRefName(config.image);
    const { os, architecture, variant } = config.config;
    const platform = os && architecture ? { os, architecture, ...(variant ? { variant } : {}) } : undefined;
    const indexBytes = mergeLayoutIndex(index, { digest: manifestDigest, size: manifest.length, refName, ...(platform ? { platform } : {}) });
    await writeFileAtomically(effects, owner, path.join(root, INDEX), indexBytes, 'index');
    // Committed: from here on nothing is rolled back.
    run.added.length = 0;
    run.createdRoot = undefined;
    await run.lock.release();
    run.untrack();
    this.run = undefined;
    return { destination: refName ? `${root}:${refName}` : `${root}@${manifestDigest}` };
  }

  async abort(): Promise<void> {
    const run = this.run;
    if (!run) return;
    try {
      await run.inFlight.settled();
      await this.undo(run, false);
    } finally {
      run.untrack();
      this.run = undefined;
    }
  }

  /** Remove what the run added (once); `forced` on a forced exit, when layout operations may still be running. */
  private undo(run: LayoutRun, forced: boolean): Promise<void> {
    run.undoing ??= (async () => {
      if (forced) await run.inFlight.settledWithin();
      // Under the lock, so a concurrent run's index entry is either written before we look
      // (and its blobs are spared) or checks its blobs after we removed ours.
      if (!run.lock && run.added.length > 0) run.lock = await acquireStoreLock(run.root, { timeoutMs: forced ? 1_000 : 10_000 }).catch(() => undefined);
      try {
        const inUse = await blobsInUse(run.root);
        const indexExists = (await lstatEntry(path.join(run.root, INDEX))).kind !== 'missing';
        for (const p of [...run.added].reverse()) {
          const rel = path.relative(run.root, p);
          if (inUse.has(rel) || (rel === MARKER && indexExists)) continue;
          await fs.rm(p, { recursive: false, force: true }).catch(() => fs.rmdir(p).catch(() => undefined));
        }
        run.added.length = 0;
      } finally {
        await run.lock?.release();
      }
      // Only empty directories: another run may be writing into a layout this run created.
      if (run.createdRoot) await this.store.removeCreated(run.createdRoot);
    })();
    return run.undoing;
  }

  private async lock(root: string, signal: AbortSignal): Promise<StoreLock> {
    try {
      return await acquireStoreLock(root, { signal, ...(this.options.lockTimeoutMs !== undefined ? { timeoutMs: this.options.lockTimeoutMs } : {}) });
    } catch (e) {
      if (e instanceof StoreLockError) throw outputError(`${this.description}: ${e.message}`);
      throw e;
    }
  }
}



/**
 * Layout-relative paths (`blobs/<alg>/<hex>`) of every blob reachable from `index.json`:
 * its manifests and what they name (nested indexes too). Unreadable documents name nothing.
 */
async function blobsInUse(root: string): Promise<Set<string>> {
  const inUse = new Set<string>();
  let bytes: Uint8Array | undefined;
  try {
    bytes = await readRegularFile(path.join(root, INDEX), MAX_JSON_BYTES);
  } catch {
    return inUse;
  }
  if (bytes === undefined) return inUse;
  const queue = blobsNamedByManifest(bytes);
  let walked = 0;
  while (queue.length > 0 && walked < MAX_DOCUMENTS_WALKED) {
    const digest = queue.shift() as Digest;
    const rel = blobPath(digest);
    if (inUse.has(rel)) continue;
    inUse.add(rel);
    const entry = await lstatEntry(path.join(root, rel));
    // Only small regular files can be manifests; layers are never read here.
    if (entry.kind !== 'file' || (entry.stats?.size ?? 0) > MAX_JSON_BYTES) continue;
    walked++;
    const doc = await readRegularFile(path.join(root, rel), MAX_JSON_BYTES).catch(() => undefined);
    if (doc && doc[0] === 0x7b) queue.push(...blobsNamedByManifest(doc));
  }
  return inUse;
}


/** `ocidir://` as an output: the copy loop into an {@link OciLayoutDestination}. */
export class OciLayoutOutput extends CopyOutput<BlobDescriptor> {
  constructor(options: OciLayoutOutputOptions) {
    super(new OciLayoutDestination(options));
  }
}

export async function openOciLayoutOutput(target: Target, ref: OciLayoutReference, settings: TransportSettings): Promise<ImageOutput> {
  if (ref.digest !== undefined) throw usageError(`${target.uri}: a destination takes a tag, not a digest (the manifest's digest is what it is); write ocidir://${ref.path}:TAG`);
  return new OciLayoutOutput({
    path: ref.path,
    ...(ref.tag !== undefined ? { tag: ref.tag } : {}),
    compression: settings.compression ?? 'gzip',
    concurrency: settings.parallel ?? 4,
    label: target.uri,
  });
}
