/**
 * A Writable into an existing file from byte `start` on that writes its bulk with
 * O_DIRECT: whole 512-byte blocks from aligned staging buffers (3 × 4 MiB), straight to the device,
 * so a large layer written into an archive takes no page-cache pages. On a virtual
 * machine whose free memory the host takes back (free page reporting), each new
 * page-cache page costs a fault in the host: writing 1 GiB into freshly freed memory took
 * 3.6 s here, against 1.0 s with O_DIRECT (docs/performance.md, issue 15).
 *
 * Falls back to plain positional writes when O_DIRECT is unavailable (tmpfs, the fsops
 * addon not built, `start` not block-aligned) or turned off (`OCCYSTRAP_DIRECT_IO=off`).
 * The last partial block is written through the page cache, after every direct write has
 * completed, so the two kinds of write never overlap in time on one block.
 *
 * @module
 */
import { constants, promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { loadAddon } from './native-addons.js';

/** Direct writes go in blocks of this size (and at offsets that are multiples of it). */
const BLOCK = 512;
/** Each staging buffer; one is filled while the others are being written (4 MiB direct writes run at the disk's speed here, as 8 MiB ones do). */
const STAGING_BYTES = 4 << 20;
const STAGING_BUFFERS = 3;

interface AlignedAlloc {
  alignedBuffer(size: number): ArrayBuffer;
}

let allocator: AlignedAlloc | string | undefined;

/** Whether O_DIRECT may be tried at all: the switch, and the addon that gives aligned memory. */
function directAllocator(): AlignedAlloc | undefined {
  if (process.env.OCCYSTRAP_DIRECT_IO === 'off') return undefined;
  allocator ??= loadAddon<AlignedAlloc>('fsops');
  return typeof allocator === 'string' || typeof allocator.alignedBuffer !== 'function' ? undefined : allocator;
}

interface Staging {
  readonly bytes: Buffer;
  /** The write of this buffer under way, if any. */
  busy: Promise<void>;
}

export class DirectFileWriter extends Writable {
  private plain: FileHandle | undefined;
  private direct: FileHandle | undefined;
  private staging: Staging[] = [];
  private current = 0;
  private filled = 0;
  /** Where the next staged byte goes in the file. */
  private position: number;
  /** The first failure of a write under way, reported by the next call. */
  private failed: Error | undefined;
  /** True when the bulk went through O_DIRECT (for the tests). */
  usedDirect = false;

  constructor(
    private readonly path: string,
    private readonly start: number,
  ) {
    super({ highWaterMark: 1 << 20 });
    this.position = start;
  }

  override _construct(callback: (error?: Error | null) => void): void {
    this.open().then(() => callback(), callback);
  }

  private async open(): Promise<void> {
    this.plain = await fs.open(this.path, constants.O_WRONLY);
    const alloc = this.start % BLOCK === 0 ? directAllocator() : undefined;
    if (!alloc) return;
    try {
      this.direct = await fs.open(this.path, constants.O_WRONLY | constants.O_DIRECT);
    } catch {
      return; // the file system refuses O_DIRECT (tmpfs): plain writes
    }
    for (let i = 0; i < STAGING_BUFFERS; i++) this.staging.push({ bytes: Buffer.from(alloc.alignedBuffer(STAGING_BYTES)), busy: Promise.resolve() });
    this.usedDirect = true;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.take(chunk).then(() => callback(), callback);
  }

  private async take(chunk: Buffer): Promise<void> {
    if (this.failed) throw this.failed;
    if (!this.direct) {
      await this.writeAll(this.plain as FileHandle, chunk, this.position);
      this.position += chunk.length;
      return;
    }
    for (let at = 0; at < chunk.length; ) {
      const stage = this.staging[this.current] as Staging;
      const n = Math.min(chunk.length - at, STAGING_BYTES - this.filled);
      chunk.copy(stage.bytes, this.filled, at, at + n);
      this.filled += n;
      at += n;
      if (this.filled === STAGING_BYTES) {
        this.launch(stage, STAGING_BYTES);
        this.current = (this.current + 1) % this.staging.length;
        this.filled = 0;
        await (this.staging[this.current] as Staging).busy;
        if (this.failed) throw this.failed;
      }
    }
  }

  /** Write `length` staged bytes (a multiple of the block) at the current position, O_DIRECT. */
  private launch(stage: Staging, length: number): void {
    const at = this.position;
    this.position += length;
    stage.busy = this.writeAll(this.direct as FileHandle, stage.bytes.subarray(0, length), at).catch((e: unknown) => {
      this.failed ??= e instanceof Error ? e : new Error(String(e));
    });
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.finish().then(() => callback(), callback);
  }

  private async finish(): Promise<void> {
    if (this.direct) {
      const stage = this.staging[this.current] as Staging;
      const whole = this.filled - (this.filled % BLOCK);
      const tail = Buffer.from(stage.bytes.subarray(whole, this.filled));
      if (whole > 0) this.launch(stage, whole);
      await Promise.all(this.staging.map((s) => s.busy));
      if (this.failed) throw this.failed;
      // The partial last block through the page cache, once the direct writes are done.
      await this.writeAll(this.plain as FileHandle, tail, this.position);
      this.position += tail.length;
      this.filled = 0;
    }
    await this.closeAll();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    Promise.all(this.staging.map((s) => s.busy))
      .then(() => this.closeAll())
      .then(
        () => callback(error),
        (e: unknown) => callback(error ?? (e as Error)),
      );
  }

  private async closeAll(): Promise<void> {
    const handles = [this.plain, this.direct];
    this.plain = undefined;
    this.direct = undefined;
    this.staging = [];
    for (const h of handles) await h?.close();
  }

  private async writeAll(handle: FileHandle, data: Buffer, position: number): Promise<void> {
    try {
      for (let done = 0; done < data.length; ) {
        const { bytesWritten } = await handle.write(data, done, data.length - done, position + done);
        if (bytesWritten === 0) throw new Error(`${this.path}: short write at ${position + done}`);
        done += bytesWritten;
      }
    } catch (e) {
      // A handle's write error names no file: name the one being written.
      if (typeof e === 'object' && e !== null && (e as { path?: string }).path === undefined) (e as { path?: string }).path = this.path;
      throw e;
    }
  }
}
