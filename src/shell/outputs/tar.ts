/**
 * `tar://` output: a docker-loadable archive (docker-save v1.2: `manifest.json`,
 * `repositories`, `<config hex>.json`, `<diff_id hex>/layer.tar`), USTAR with PAX only
 * where needed, deterministic (mtime 0, uid/gid 0).
 *
 * The archive is written to a temp name beside the target and renamed into place at the
 * end; a failed or interrupted run leaves no file. Layers arrive in manifest order (the
 * pipeline reorders them) while later ones keep downloading.
 *
 * @module
 */
import { constants, createReadStream, type Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { promises as fs } from 'node:fs';
import { type ConfigElement, type ImageElement, repoTag } from '../../core/element.js';
import { outputError } from '../../core/errors.js';
import type { TempFile } from '../../core/ownership.js';
import type { ImageOutput, OutputSummary, StageContext } from '../../core/pipeline/types.js';
import { dockerSaveManifestBytes, repositoriesBytes, savedConfigPath, savedLayerPath } from '../../core/plans/docker-save.js';
import { publishMode } from '../fs/atomic.js';
import { describeKind, kindOf } from '../fs/store-fs.js';
import { encodeHeader, END_OF_ARCHIVE, paddingFor, type TarHeader } from '../../core/tar/header.js';

export interface TarOutputOptions {
  readonly path: string;
  readonly label?: string;
}

const FIXED = { mode: 0o644, uid: 0, gid: 0, mtime: 0 } as const;

/** Writes (headers, padding, layer chunks) are gathered into one writev of about this many bytes. */
const GATHER_BYTES = 1 << 20;

/**
 * Writes the archive through a file handle: every write is awaited, so a failure is a
 * rejected promise, never a stream 'error' event that could fire after the run failed.
 */
class TarWriter {
  bytes = 0;
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  constructor(
    private readonly out: FileHandle,
    private readonly path: string,
  ) {}

  async write(chunk: Uint8Array): Promise<void> {
    this.bytes += chunk.length;
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (this.pendingBytes >= GATHER_BYTES) await this.flush();
  }

  private async flush(): Promise<void> {
    if (this.pendingBytes === 0) return;
    const buffers = this.pending;
    const total = this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
    try {
      // One writev for the gathered pieces (no copy); a short write finishes piecewise.
      const written = (await this.out.writev(buffers)).bytesWritten;
      if (written < total) {
        const rest = Buffer.concat(buffers).subarray(written);
        let offset = 0;
        while (offset < rest.length) {
          const { bytesWritten } = await this.out.write(rest, offset, rest.length - offset);
          offset += bytesWritten;
        }
      }
    } catch (e) {
      // A handle's write error names no file: name the archive being written.
      if (typeof e === 'object' && e !== null && (e as { path?: string }).path === undefined) (e as { path?: string }).path = this.path;
      throw e;
    }
  }

  async entry(header: Omit<TarHeader, 'mode' | 'uid' | 'gid' | 'mtime'> & Partial<TarHeader>, data?: Uint8Array): Promise<void> {
    await this.write(encodeHeader({ ...FIXED, ...header }));
    if (data) {
      await this.write(data);
      await this.write(new Uint8Array(paddingFor(data.length)));
    }
  }

  async fileEntry(name: string, source: string, size: number): Promise<void> {
    await this.entry({ name, type: 'file', size });
    let copied = 0;
    for await (const chunk of createReadStream(source, { highWaterMark: 1 << 20 })) {
      copied += (chunk as Buffer).length;
      if (copied > size) throw new Error(`${source} grew while being archived`);
      await this.write(chunk as Buffer);
    }
    if (copied !== size) throw new Error(`${source} is ${copied} bytes, expected ${size}`);
    await this.write(new Uint8Array(paddingFor(size)));
  }

  async finish(): Promise<void> {
    await this.write(END_OF_ARCHIVE);
    await this.flush();
  }
}

export class TarOutput implements ImageOutput {
  readonly description: string;
  readonly order = 'manifest' as const;
  readonly wants = async () => true;

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

  async consume(elements: AsyncIterable<ImageElement>, ctx: StageContext): Promise<OutputSummary> {
    const { effects, owner } = ctx;
    const target = path.resolve(this.options.path);
    await this.checkParent(target);
    await this.checkTarget(target);
    const archive: TempFile = await effects.perform({ _tag: 'CreateTemp', owner, purpose: 'archive', location: { _tag: 'Beside', target } });
    let out: FileHandle | undefined;
    const closeOut = async () => {
      const handle = out;
      out = undefined;
      await handle?.close();
    };
    let config: ConfigElement | undefined;
    const layerPaths: string[] = [];
    const written = new Set<string>();
    let layerBytes = 0;
    let skipped = 0;
    try {
      // r+: a temp file the scope already removed is never recreated.
      out = await fs.open(archive.path, constants.O_RDWR);
      const writer = new TarWriter(out, archive.path);
      for await (const element of elements) {
        if (element._tag === 'Config') {
          if (config) throw outputError(`${this.description}: a second config arrived; one image per archive`);
          config = element;
          await writer.entry({ name: savedConfigPath(element.digest), type: 'file', size: element.raw.length }, element.raw);
          continue;
        }
        if (!config) throw outputError(`${this.description}: a layer arrived before the config`);
        const name = savedLayerPath(element.layer.diffId);
        layerPaths.push(name);
        const payload = element.payload;
        if (payload._tag === 'Skipped') {
          if (payload.reason === 'duplicate' || written.has(name)) {
            skipped++;
            continue;
          }
          throw outputError(`${this.description}: layer ${element.layer.index} arrived without data`);
        }
        try {
          if (!written.has(name)) {
            await writer.entry({ name: name.slice(0, name.indexOf('/') + 1), type: 'directory', size: 0, mode: 0o755 });
            await writer.fileEntry(name, payload.file.path, payload.size);
            written.add(name);
            layerBytes += payload.size;
          } else {
            skipped++;
          }
        } finally {
          await effects.perform({ _tag: 'Release', file: payload.file, owner });
        }
      }
      if (!config) throw outputError(`${this.description}: the input produced no image`);
      if (layerPaths.length !== config.layers.length) {
        throw outputError(`${this.description}: got ${layerPaths.length} of ${config.layers.length} layers`);
      }
      const tag = repoTag(config.image);
      const plan = { configPath: savedConfigPath(config.digest), layerPaths, repoTags: tag ? [tag] : [] };
      const manifest = dockerSaveManifestBytes([plan]);
      await writer.entry({ name: 'manifest.json', type: 'file', size: manifest.length }, manifest);
      const repositories = repositoriesBytes([plan]);
      if (repositories) await writer.entry({ name: 'repositories', type: 'file', size: repositories.length }, repositories);
      await writer.finish();
      await closeOut();
      await publishMode(archive.path);
      await this.checkTarget(target); // again: it may have been replaced while we wrote
      await effects.perform({ _tag: 'MoveIntoPlace', file: archive, owner, destination: target });
      return { destination: target, layers: layerPaths.length, layersSkipped: skipped, bytes: layerBytes, copiedAcrossDevices: 0 };
    } catch (e) {
      await closeOut().catch(() => undefined);
      await effects.perform({ _tag: 'Release', file: archive, owner }).catch(() => undefined);
      throw e;
    }
  }
}
