/**
 * {@link LayerCodecs} over a {@link MemoryFs}, so `Inflate` and `Compress` effects go
 * through the real {@link TempScope} (and its ledger) in property tests.
 *
 * - "Compressed" is a reversible transform: `<compression>:` + the content reversed.
 *   {@link compressedContent} is the same transform, for inputs that "fetch" a blob.
 * - `inflate` checks the prefix (`sniff` reads it; `none` copies), so a blob inflated as
 *   the wrong compression is an error, as zlib's would be.
 * - Each call reads the source and writes the new file in two pieces (memory-fs
 *   operations: schedulable and faultable like any other).
 * - Faults: {@link MemoryCodecs.failNext} makes the next matching call fail before
 *   writing, half-way (one piece written) or after writing everything.
 * - The signal (the scope's: aborted when it closes) stops a call between its two pieces.
 * - {@link MemoryCodecs.calls} logs every call with its outcome.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import type { Digest } from '../../src/core/digest.js';
import type { Compression } from '../../src/core/media-types.js';
import type { BlobCompression } from '../../src/core/ownership.js';
import type { LayerCodecs, TranscodeResult } from '../../src/shell/fs/transcode.js';
import type { MemoryFs } from './memory-fs.js';

export type CodecOp = 'inflate' | 'compress';
export type CodecFaultPoint = 'start' | 'midway' | 'afterWrite';

/** An error the memory codecs were told to raise. */
export class CodecFault extends Error {
  readonly injected = true;
  constructor(
    readonly op: CodecOp,
    readonly point: CodecFaultPoint,
  ) {
    super(`${op} failed (${point}, injected)`);
    this.name = 'CodecFault';
  }
}

export interface CodecCall {
  readonly op: CodecOp;
  readonly from: string;
  readonly to: string;
  readonly compression: string;
  /** `ok`, or why it failed. */
  outcome: string;
}

/** sha256 of a latin1 string, as a digest. */
export function shaOf(content: string): Digest {
  return `sha256:${createHash('sha256').update(Buffer.from(content, 'latin1')).digest('hex')}` as Digest;
}

/** The blob the memory codecs make of `content`. */
export function compressedContent(content: string, compression: BlobCompression): string {
  return `${compression}:${[...content].reverse().join('')}`;
}

/** The content of a blob `compressedContent` made, or an error message. */
function inflatedContent(blob: string, compression: Compression | 'sniff'): string {
  if (compression === 'none') return blob;
  const colon = blob.indexOf(':');
  const found = colon > 0 ? blob.slice(0, colon) : '';
  if (found !== 'gzip' && found !== 'zstd') throw new Error(`not a compressed blob (no gzip/zstd prefix)`);
  if (compression !== 'sniff' && compression !== found) throw new Error(`${compression} blob expected, found ${found}`);
  return [...blob.slice(colon + 1)].reverse().join('');
}

export class MemoryCodecs implements LayerCodecs {
  readonly calls: CodecCall[] = [];
  private readonly faults: Array<{ op: CodecOp; point: CodecFaultPoint; skip: number }> = [];

  constructor(private readonly fs: MemoryFs) {}

  /** The next matching call (after `skip` others) fails at `point`. */
  failNext(op: CodecOp, point: CodecFaultPoint, skip = 0): void {
    this.faults.push({ op, point, skip });
  }

  /** Successful calls of `op`. */
  done(op: CodecOp): CodecCall[] {
    return this.calls.filter((c) => c.op === op && c.outcome === 'ok');
  }

  inflate(from: string, to: string, compression: Compression | 'sniff', signal?: AbortSignal): Promise<TranscodeResult> {
    return this.run('inflate', from, to, compression, (s) => inflatedContent(s, compression), signal);
  }

  compress(from: string, to: string, compression: BlobCompression, signal?: AbortSignal): Promise<TranscodeResult> {
    return this.run('compress', from, to, compression, (s) => compressedContent(s, compression), signal);
  }

  private takeFault(op: CodecOp): CodecFaultPoint | undefined {
    const i = this.faults.findIndex((f) => f.op === op);
    if (i < 0) return undefined;
    const f = this.faults[i]!;
    if (f.skip > 0) {
      f.skip--;
      return undefined;
    }
    this.faults.splice(i, 1);
    return f.point;
  }

  private async run(op: CodecOp, from: string, to: string, compression: string, transform: (s: string) => string, signal: AbortSignal | undefined): Promise<TranscodeResult> {
    const call: CodecCall = { op, from, to, compression, outcome: 'running' };
    this.calls.push(call);
    const fault = this.takeFault(op);
    try {
      if (fault === 'start') throw new CodecFault(op, fault);
      const out = transform(await this.fs.readFile(from));
      const half = Math.floor(out.length / 2);
      await this.fs.writeFile(to, out.slice(0, half), 'replace');
      if (fault === 'midway') throw new CodecFault(op, fault);
      // Stopped between the two pieces, as a stream stops between chunks.
      if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : new Error('aborted');
      await this.fs.writeFile(to, out.slice(half), 'append');
      if (fault === 'afterWrite') throw new CodecFault(op, fault);
      call.outcome = 'ok';
      return { digest: shaOf(out), size: out.length };
    } catch (e) {
      call.outcome = (e as { code?: string }).code ?? (e as Error).message;
      throw e;
    }
  }
}
