/**
 * `tar://` output: a docker-loadable archive (docker-save v1.2: `manifest.json`,
 * `repositories`, `<config hex>.json`, `<diff_id hex>/layer.tar`), USTAR with PAX only
 * where needed, deterministic (mtime 0, uid/gid 0).
 *
 * The archive is written to a temp name beside the target and renamed into place at the
 * end; a failed or interrupted run leaves no file. Layers arrive in manifest order (the
 * pipeline reorders them) while later ones keep downloading; a source that learns a
 * layer's identity only by hashing it (`docker://`) writes each where the archive ends
 * as it reads it (an unnamed place), so its entries follow the source's order.
 *
 * @module
 */
import { constants, type Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { promises as fs } from 'node:fs';
import type { Digest } from '../../core/digest.js';
import { type ConfigElement, type DataPayload, type LayerDescriptor, type PlacedTar, type PlacedTarget, releaseElement, repoTag, type TarPlacement, tarOf, type UnnamedTarget, type UnnamedTarPlacement } from '../../core/element.js';
import { AbortError, outputError } from '../../core/errors.js';
import { Turns } from '../../core/pipeline/turns.js';
import type { TempFile } from '../../core/ownership.js';
import { type CommittedImage, CopyOutput, type ImageDestination, type PutLayerResult } from '../../core/pipeline/copy-image.js';
import type { StageContext } from '../../core/pipeline/types.js';
import { dockerSaveManifestBytes, repositoriesBytes, savedConfigPath, savedLayerPath } from '../../core/plans/docker-save.js';
import { publishMode } from '../fs/atomic.js';
import { describeKind, kindOf } from '../fs/store-fs.js';
import { encodeOneBlockHeader, paddingFor } from '../../core/tar/header.js';
import { FIXED, TarAppender } from './tar-appender.js';

export interface TarOutputOptions {
  readonly path: string;
  readonly label?: string;
  /** The RepoTag written to manifest.json instead of the source's name (`?name=`). */
  readonly repoTag?: string;
}


/** Layers whose blob is at least this large are written straight into the archive (see `offer`). */
export const PLACE_MIN_BYTES = 4 << 20;

/** The threshold: OCCYSTRAP_TAR_PLACE_MIN_BYTES (bytes, or `off`), else {@link PLACE_MIN_BYTES}. */
function placeMinBytes(): number | undefined {
  const v = process.env.OCCYSTRAP_TAR_PLACE_MIN_BYTES;
  if (v === undefined || v === '') return PLACE_MIN_BYTES;
  if (v === 'off') return undefined;
  const n = Number(v);
  return Number.isInteger(n) && n >= 0 ? n : PLACE_MIN_BYTES;
}

/** Writes (headers, padding, layer chunks) are gathered into one writev of about this many bytes. */
const GATHER_BYTES = 1 << 20;

/**
 * Writes the archive through a file handle: every write is awaited, so a failure is a
 * rejected promise, never a stream 'error' event that could fire after the run failed.
 */
class TarWriter extends TarAppender {
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  /** Set while another writer fills the archive's end (a placed layer): nothing else may be appended. */
  held = false;
  constructor(
    private readonly out: FileHandle,
    private readonly path: string,
  ) {
    super();
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (this.held) throw new Error(`${this.path}: write while a placed layer fills the archive`);
    this.bytes += chunk.length;
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (this.pendingBytes >= GATHER_BYTES) await this.flush();
  }

  /** Write out what is gathered, at its place in the archive (positional: placed layers write beside us). */
  async flush(): Promise<void> {
    if (this.pendingBytes === 0) return;
    const buffers = this.pending;
    const total = this.pendingBytes;
    const at = this.bytes - total;
    this.pending = [];
    this.pendingBytes = 0;
    try {
      // One writev for the gathered pieces (no copy); a short write finishes piecewise.
      const written = (await this.out.writev(buffers, at)).bytesWritten;
      if (written < total) {
        const rest = Buffer.concat(buffers).subarray(written);
        let offset = 0;
        while (offset < rest.length) {
          const { bytesWritten } = await this.out.write(rest, offset, rest.length - offset, at + written + offset);
          offset += bytesWritten;
        }
      }
    } catch (e) {
      // A handle's write error names no file: name the archive being written.
      if (typeof e === 'object' && e !== null && (e as { path?: string }).path === undefined) (e as { path?: string }).path = this.path;
      throw e;
    }
  }

  /** Overwrite bytes already written (a placed layer's header, once its size is known). */
  async patch(at: number, data: Uint8Array): Promise<void> {
    let offset = 0;
    while (offset < data.length) offset += (await this.out.write(data, offset, data.length - offset, at + offset)).bytesWritten;
  }

  /** Hand the archive's end to another writer: flushed, and held until {@link release}. */
  async hold(): Promise<number> {
    await this.flush();
    this.held = true;
    return this.bytes;
  }

  /** The other writer wrote `size` bytes at the end: append after them again. */
  release(size: number): void {
    this.held = false;
    this.bytes += size;
  }

  /** The end was held for bytes that are not wanted: cut the archive back to `at` and append from there. */
  async cutBack(at: number): Promise<void> {
    if (!this.held || this.pendingBytes !== 0 || at > this.bytes) throw new Error(`${this.path}: cut back to ${at} while the end is not held`);
    this.bytes = at;
    await this.out.truncate(at);
    this.held = false;
  }

  override async finish(): Promise<void> {
    await super.finish();
    await this.flush();
  }
}

/** The layer path an unnamed place carries until its tar is hashed (as long as every real one: its header is rewritten in place). */
const UNNAMED_LAYER_PATH = `${'0'.repeat(64)}/layer.tar`;

/** The archive's end, taken for one layer's tar. */
interface Placing {
  readonly claim: number;
  /** Where the layer's directory entry starts (a dropped unnamed tar is cut back to here). */
  readonly directoryAt: number;
  readonly headerAt: number;
  readonly dataAt: number;
  /** Known for an ordered place (the layer is named when claimed); absent for an unnamed one. */
  readonly ordered?: { readonly index: number; readonly name: string };
}

/** The archive being written: its temp file, handle and writer. */
interface OpenArchive {
  readonly file: TempFile;
  readonly target: string;
  handle: FileHandle | undefined;
  readonly writer: TarWriter;
}

/**
 * The `tar://` destination operations. Layers come in manifest order, one at a time; the
 * config entry is written when the final config is known (first, or after the layers
 * when a filter rewrote them), `manifest.json` and `repositories` at commit.
 */
export class TarDestination implements ImageDestination<string> {
  readonly description: string;
  readonly order = 'manifest' as const;
  readonly needs = { _tag: 'Tar' } as const;
  private archive: OpenArchive | undefined;
  /** The layers of the image (from `begin`): the order entries go into the archive. */
  private layers: readonly LayerDescriptor[] = [];
  /** The claim whose layer is filling the archive's end now. */
  private placing: Placing | undefined;
  /** Unnamed places named by their diff_id, by claim, until their layer arrives `Placed`. */
  private readonly named = new Map<number, { readonly diffId: Digest; readonly name: string; readonly size: number }>();
  /** A dropped place that could not be cut back: the archive is damaged, the commit fails. */
  private damaged: unknown;
  private claims = 0;
  private aborted = false;
  private layersMayStart = false;
  /** Claims waiting for their turn, woken after every change. */
  private readonly turns = new Turns();

  constructor(private readonly options: TarOutputOptions) {
    this.description = options.label ?? `tar://${options.path}`;
  }

  private async checkParent(target: string): Promise<void> {
    const dir = path.dirname(target);
    let st: Stats;
    try {
      st = await fs.stat(dir);
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code === 'ENOENT') throw outputError(`${this.description}: directory ${dir} does not exist; create it first`, e);
      if (code === 'ENOTDIR') throw outputError(`${this.description}: ${dir} is not a directory (a part of the path is a file); check the path`, e);
      throw e;
    }
    if (!st.isDirectory()) throw outputError(`${this.description}: ${dir} is not a directory; check the path`);
  }

  /**
   * The target may be missing or a regular file (or a symbolic link to one: the link is
   * then replaced by the archive, the file it pointed to is left alone). Anything else (a
   * directory, a device, a FIFO, a socket) is refused: renaming over it would replace it.
   */
  private async checkTarget(target: string): Promise<void> {
    let st: Stats;
    try {
      st = await fs.stat(target);
    } catch (e) {
      if ((e as { code?: string }).code === 'ENOENT') return; // nothing there, or a dangling link
      throw e;
    }
    if (st.isFile()) return;
    const through = (await fs.lstat(target)).isSymbolicLink() ? ' (through a symbolic link)' : '';
    if (st.isDirectory()) throw outputError(`${this.description}: ${target} is a directory${through}; give a file name for the archive`);
    throw outputError(`${this.description}: ${target} is ${describeKind(kindOf(st))}${through}, not a regular file; refusing to replace it; give the path of a new or regular file`);
  }

  private open(): OpenArchive {
    if (!this.archive) throw new Error(`${this.description}: the archive is not open`);
    return this.archive;
  }

  /**
   * Large layers (a blob of {@link PLACE_MIN_BYTES} or more) are offered the archive's end:
   * the input waits for the layer's turn and writes its tar there, once, instead of into a
   * temp file copied here afterwards. Smaller ones are spooled, so they download in parallel.
   * Every layer is offered the end unnamed as well, for a source that reads entries in an
   * order of its own and learns which layer each is by hashing it (see {@link claimUnnamed}).
   */
  offer(layer: LayerDescriptor): TarPlacement | undefined {
    const size = layer.blob?.size ?? layer.size;
    const min = placeMinBytes();
    if (min === undefined) return undefined;
    const ordered = size !== undefined && size >= min;
    return { claim: ordered ? (signal) => this.claim(layer.index, signal) : async () => undefined, unnamed: this.unnamedPlacement };
  }

  private readonly unnamedPlacement: UnnamedTarPlacement = { claim: (_storedSize, signal) => this.claimUnnamed(signal) };

  /** Nothing fills the archive's end (the archive is open, its layers may start): appending may go on. */
  private endFree(): 'now' | 'closed' | undefined {
    if (this.aborted) return 'closed';
    return this.archive && this.layersMayStart && !this.placing ? 'now' : undefined;
  }

  /**
   * The archive's end for the next tar, whichever layer it turns out to be: written with a
   * stand-in name, then renamed in place by `name` (the entries' order is then the order
   * the source read them in, as deterministic as that), or cut off by `drop`.
   */
  private async claimUnnamed(signal: AbortSignal): Promise<UnnamedTarget> {
    if ((await this.turns.until(() => this.endFree(), signal)) === 'closed') throw new AbortError(new Error(`${this.description} stopped`));
    const writer = this.open().writer;
    const claim = ++this.claims;
    const directoryAt = writer.bytes;
    // Taken before any await, so no other claim or entry can start in between.
    this.placing = { claim, directoryAt, headerAt: directoryAt + 512, dataAt: directoryAt + 1024 };
    await writer.write(directoryHeader(UNNAMED_LAYER_PATH));
    await writer.write(encodeOneBlockHeader({ ...FIXED, name: UNNAMED_LAYER_PATH, type: 'file', size: 0 }));
    const dataAt = await writer.hold();
    if (dataAt !== directoryAt + 1024) throw new Error(`${this.description}: the archive moved while a layer was placed`);
    return { file: this.open().file, offset: dataAt, claim, name: (diffId, size) => this.nameUnnamed(claim, diffId, size), drop: () => this.dropUnnamed(claim) };
  }

  /** The unnamed tar `claim` hashed to `diffId`: its entries get their names and size, appending resumes. */
  private async nameUnnamed(claim: number, diffId: Digest, size: number): Promise<void> {
    const at = this.placing;
    if (!at || at.claim !== claim || at.ordered) throw outputError(`${this.description}: a layer was named at a place it did not claim`);
    const name = savedLayerPath(diffId);
    if (this.open().writer.layers.has(name)) {
      await this.dropUnnamed(claim);
      throw outputError(`${this.description}: layer ${diffId} was placed twice; it must be delivered once`);
    }
    const writer = this.open().writer;
    this.placing = undefined;
    writer.release(size);
    // The padding right away (before any await): whoever appends next comes after it.
    const padded = writer.write(new Uint8Array(paddingFor(size)));
    writer.layers.add(name);
    this.named.set(claim, { diffId, name, size });
    await padded;
    await writer.patch(at.directoryAt, directoryHeader(name));
    await writer.patch(at.headerAt, encodeOneBlockHeader({ ...FIXED, name, type: 'file', size }));
    this.turns.wake();
  }

  private async dropUnnamed(claim: number): Promise<void> {
    const at = this.placing;
    if (!at || at.claim !== claim || at.ordered) return;
    this.placing = undefined;
    try {
      await this.open().writer.cutBack(at.directoryAt);
    } catch (e) {
      this.damaged ??= e;
    }
    this.turns.wake();
  }

  /**
   * The layer's turn (`undefined`: not yet): the archive is open, nothing is filling it,
   * every earlier layer's entry is in.
   */
  private turnOf(index: number): 'now' | 'never' | 'closed' | undefined {
    if (this.aborted) return 'closed';
    const archive = this.archive;
    // Layers follow the config entry when the first config is final (it is written right after begin).
    if (!archive || !this.layersMayStart) return undefined;
    const layer = this.layers[index];
    if (!layer || archive.writer.layers.has(savedLayerPath(layer.diffId))) return 'never';
    let earlierMissing = false;
    for (const earlier of this.layers.slice(0, index)) {
      // The same diff_id earlier in the image: that position carries the entry.
      if (earlier.diffId === layer.diffId) return 'never';
      if (!archive.writer.layers.has(savedLayerPath(earlier.diffId))) earlierMissing = true;
    }
    return this.placing || earlierMissing ? undefined : 'now';
  }

  private async claim(index: number, signal: AbortSignal): Promise<PlacedTarget | undefined> {
    const turn = await this.turns.until(() => this.turnOf(index), signal);
    if (turn === 'never') return undefined;
    if (turn === 'closed') throw new AbortError(new Error(`${this.description} stopped`));
    const archive = this.open();
    const layer = this.layers[index] as LayerDescriptor;
    const name = savedLayerPath(layer.diffId);
    // Taken before any await, so no other claim or entry can start in between.
    const directoryAt = archive.writer.bytes;
    const headerAt = directoryAt + 512;
    const claim = ++this.claims;
    this.placing = { claim, directoryAt, headerAt, dataAt: headerAt + 512, ordered: { index, name } };
    await archive.writer.layerDirectory(name);
    // A placeholder header, rewritten with the size when the layer arrives.
    await archive.writer.write(encodeOneBlockHeader({ ...FIXED, name, type: 'file', size: 0 }));
    const dataAt = await archive.writer.hold();
    if (dataAt !== headerAt + 512) throw new Error(`${this.description}: the archive moved while layer ${index} was placed`);
    return { file: archive.file, offset: dataAt, claim };
  }

  async begin(config: ConfigElement, ctx: StageContext): Promise<void> {
    this.layers = config.layers;
    this.layersMayStart = config.provisional === true;
    if (this.archive) throw outputError(`${this.description}: one image per archive`);
    const target = path.resolve(this.options.path);
    await this.checkParent(target);
    await this.checkTarget(target);
    const file = await ctx.effects.perform({ _tag: 'CreateTemp', owner: ctx.owner, purpose: 'archive', location: { _tag: 'Beside', target } });
    let handle: FileHandle;
    try {
      // r+: a temp file the scope already removed is never recreated.
      handle = await fs.open(file.path, constants.O_RDWR);
    } catch (e) {
      await ctx.effects.perform({ _tag: 'Release', file, owner: ctx.owner }).catch(() => undefined);
      throw e;
    }
    this.archive = { file, target, handle, writer: new TarWriter(handle, file.path) };
    this.turns.wake();
  }

  async putConfig(config: ConfigElement, ctx: StageContext): Promise<void> {
    // After the layers (a provisional first config): a dropped last place may still be cut back.
    if (this.layersMayStart) await this.waitForTheEnd(ctx);
    await this.open().writer.entry({ name: savedConfigPath(config.digest), type: 'file', size: config.raw.length }, config.raw);
    this.layersMayStart = true;
    this.turns.wake();
  }

  async putLayer(layer: LayerDescriptor, payload: DataPayload, ctx: StageContext): Promise<PutLayerResult<string>> {
    if (payload._tag === 'Placed') return this.putPlaced(layer, payload.placed);
    const tar = tarOf(payload);
    try {
      if (!tar) throw outputError(`${this.description}: layer ${layer.index} arrived without its tar`);
      await this.waitForTheEnd(ctx);
      const archive = this.open();
      const name = savedLayerPath(layer.diffId);
      if (!(await archive.writer.layer(name, tar.file.path, tar.size))) return { stored: name, bytes: 0, kept: true };
      this.turns.wake();
      return { stored: name, bytes: tar.size };
    } finally {
      await releaseElement(ctx.effects, ctx.owner)({ _tag: 'Layer', layer, payload });
    }
  }

  /** Wait until no place fills the archive's end (an unnamed one may, while layers are appended). */
  private async waitForTheEnd(ctx: StageContext): Promise<void> {
    if ((await this.turns.until(() => (this.aborted ? 'closed' : this.placing ? undefined : 'now'), ctx.signal)) === 'closed') {
      throw new AbortError(new Error(`${this.description} stopped`));
    }
  }

  /**
   * A layer the input wrote into the archive's end: its header gets the size, appending
   * resumes (an unnamed place was named already: it is only checked).
   */
  private async putPlaced(layer: LayerDescriptor, placed: PlacedTar): Promise<PutLayerResult<string>> {
    const archive = this.open();
    const named = this.named.get(placed.target.claim);
    if (named) {
      if (named.diffId !== layer.diffId || named.size !== placed.size) {
        throw outputError(`${this.description}: layer ${layer.index} arrived placed at the place of ${named.diffId}`);
      }
      this.named.delete(placed.target.claim);
      return { stored: named.name, bytes: named.size };
    }
    const at = this.placing;
    const ordered = at?.ordered;
    if (!at || !ordered || at.claim !== placed.target.claim || ordered.index !== layer.index || placed.target.offset !== at.dataAt) {
      throw outputError(`${this.description}: layer ${layer.index} arrived placed at a place it did not claim`);
    }
    this.placing = undefined;
    archive.writer.release(placed.size);
    // The padding right away (before any await): whoever appends next comes after it.
    const padded = archive.writer.write(new Uint8Array(paddingFor(placed.size)));
    archive.writer.layers.add(ordered.name);
    await padded;
    await archive.writer.patch(at.headerAt, encodeOneBlockHeader({ ...FIXED, name: ordered.name, type: 'file', size: placed.size }));
    this.turns.wake();
    return { stored: ordered.name, bytes: placed.size };
  }

  async commit(image: CommittedImage<string>, ctx: StageContext): Promise<{ destination: string }> {
    const archive = this.open();
    if (this.damaged !== undefined) throw outputError(`${this.description}: a layer placed and then dropped could not be cut off the archive`, this.damaged);
    if (this.placing) throw outputError(`${this.description}: a layer's place is still being filled at the commit`);
    const stray = [...this.named.values()][0];
    if (stray) throw outputError(`${this.description}: layer ${stray.diffId} was placed in the archive but never delivered`);
    const { config } = image;
    const layerPaths = image.layers.map((r) => {
      if (r._tag === 'Present') throw outputError(`${this.description}: layer ${r.layer.index} arrived without data`);
      return savedLayerPath(r.layer.diffId);
    });
    const tag = this.options.repoTag ?? repoTag(config.image);
    const plan = { configPath: savedConfigPath(config.digest), layerPaths, repoTags: tag ? [tag] : [] };
    const manifest = dockerSaveManifestBytes([plan]);
    await archive.writer.entry({ name: 'manifest.json', type: 'file', size: manifest.length }, manifest);
    const repositories = repositoriesBytes([plan]);
    if (repositories) await archive.writer.entry({ name: 'repositories', type: 'file', size: repositories.length }, repositories);
    await archive.writer.finish();
    await this.closeHandle();
    await publishMode(archive.file.path);
    await this.checkTarget(archive.target); // again: it may have been replaced while we wrote
    await ctx.effects.perform({ _tag: 'MoveIntoPlace', file: archive.file, owner: ctx.owner, destination: archive.target });
    this.archive = undefined;
    return { destination: archive.target };
  }

  async abort(ctx: StageContext): Promise<void> {
    this.placing = undefined;
    // A fetch waiting for its turn gives up: the run is failing.
    this.aborted = true;
    this.turns.wake();
    const archive = this.archive;
    if (!archive) return;
    await this.closeHandle().catch(() => undefined);
    await ctx.effects.perform({ _tag: 'Release', file: archive.file, owner: ctx.owner }).catch(() => undefined);
    this.archive = undefined;
  }

  private async closeHandle(): Promise<void> {
    const archive = this.archive;
    const handle = archive?.handle;
    if (archive) archive.handle = undefined;
    await handle?.close();
  }
}

/** A layer directory's entry, one block (its name is as long as every layer's). */
function directoryHeader(layerPath: string): Uint8Array {
  return encodeOneBlockHeader({ ...FIXED, name: layerPath.slice(0, layerPath.indexOf('/') + 1), type: 'directory', size: 0, mode: 0o755 });
}

/** `tar://` as an output: the copy loop into a {@link TarDestination}. */
export class TarOutput extends CopyOutput<string> {
  constructor(options: TarOutputOptions) {
    super(new TarDestination(options));
  }
}
