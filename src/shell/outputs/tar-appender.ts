/**
 * What every docker-save archive writer does the same way (`tar://` into a file,
 * `docker://` into the daemon's load request): deterministic USTAR/PAX entries (mode 0644,
 * owner 0, mtime 0), a layer's directory entry, a file entry copied from a temp file with
 * its size checked, the end marker. Subclasses say where the bytes go.
 *
 * @module
 */
import { createReadStream } from 'node:fs';
import { encodeHeader, END_OF_ARCHIVE, paddingFor, type TarHeader } from '../../core/tar/header.js';

export const FIXED = { mode: 0o644, uid: 0, gid: 0, mtime: 0 } as const;

export abstract class TarAppender {
  /** The archive's length so far. */
  bytes = 0;
  /** Layer paths already in the archive (two layers with one diff_id are stored once). */
  readonly layers = new Set<string>();

  /** Append `chunk`; resolves when the writer can take more. Rejects once the writing failed. */
  abstract write(chunk: Uint8Array): Promise<void>;

  async entry(header: Omit<TarHeader, 'mode' | 'uid' | 'gid' | 'mtime'> & Partial<TarHeader>, data?: Uint8Array): Promise<void> {
    await this.write(encodeHeader({ ...FIXED, ...header }));
    if (data) {
      await this.write(data);
      await this.write(new Uint8Array(paddingFor(data.length)));
    }
  }

  /** The `<diff_id hex>/` directory entry in front of the layer file `name`. */
  async layerDirectory(name: string): Promise<void> {
    await this.entry({ name: name.slice(0, name.indexOf('/') + 1), type: 'directory', size: 0, mode: 0o755 });
  }

  /** A file entry whose `size` bytes are the file at `source` (a file that grew or shrank is refused). */
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

  /**
   * The layer file `name` (`<diff_id hex>/layer.tar`) and its directory, copied from
   * `source`; false (nothing written) when the archive holds it already.
   */
  async layer(name: string, source: string, size: number): Promise<boolean> {
    if (this.layers.has(name)) return false;
    await this.layerDirectory(name);
    await this.fileEntry(name, source, size);
    this.layers.add(name);
    return true;
  }

  async finish(): Promise<void> {
    await this.write(END_OF_ARCHIVE);
  }
}
