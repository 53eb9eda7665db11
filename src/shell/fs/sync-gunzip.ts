/**
 * gzip inflated synchronously, piece by piece, on the calling thread. Node's streaming
 * gunzip runs each step as a thread-pool job with a hand-off back to the caller; on a
 * thread that does nothing else (a sink worker) those hand-offs leave zlib idle between
 * steps. Measured on the bench's big layer over loopback HTTP: 0.92 s streamed in a
 * worker, 0.78 s inflated here (docs/performance.md, "Issue 10, third round").
 *
 * Node exposes no public stateful synchronous inflate, so this drives the zlib handle of
 * a `createGunzip()` stream the way Node's own `gunzipSync` does (`writeSync` into an
 * output buffer, `_writeState` for what is left). {@link syncGunzipAvailable} checks that
 * those internals are there; callers use the streaming path when they are not.
 *
 * Multi-member files are inflated whole (Node's zlib starts the next member itself), and
 * a stream cut short fails at {@link SyncGunzip.finish} ("unexpected end of file").
 *
 * @module
 */
import { constants, createGunzip, type Gunzip } from 'node:zlib';

interface ZlibHandle {
  writeSync(flush: number, input: Uint8Array, inOff: number, inLen: number, out: Uint8Array, outOff: number, outLen: number): void;
  onerror: (message: string, errno: number, code?: string) => void;
}

interface ZlibInternals {
  readonly _handle?: ZlibHandle | null;
  readonly _writeState?: Uint32Array;
}

function internals(g: Gunzip): { handle: ZlibHandle; state: Uint32Array } | undefined {
  const i = g as unknown as ZlibInternals;
  if (!i._handle || typeof i._handle.writeSync !== 'function' || !(i._writeState instanceof Uint32Array) || i._writeState.length < 2) return undefined;
  return { handle: i._handle, state: i._writeState };
}

let available: boolean | undefined;

/** True when this Node's zlib stream has the internals {@link SyncGunzip} drives. */
export function syncGunzipAvailable(): boolean {
  if (available === undefined) {
    const g = createGunzip();
    available = internals(g) !== undefined;
    g.close();
  }
  return available;
}

/**
 * One gzip stream. `output` receives each piece in a buffer of its own, from `allocate`
 * (by default a new one each time; a caller may hand back buffers it is done with, so a
 * long layer allocates nothing); it may return a promise to pause inflation until the
 * piece is taken, which bounds memory whatever the compression ratio.
 */
export class SyncGunzip {
  private readonly stream = createGunzip();
  private readonly handle: ZlibHandle;
  private readonly state: Uint32Array;
  private failure: Error | undefined;
  private closed = false;

  constructor(
    private readonly output: (piece: Uint8Array) => Promise<void> | void,
    private readonly allocate: () => Uint8Array = () => new Uint8Array(1 << 20),
  ) {
    const found = internals(this.stream);
    if (!found) throw new Error('this Node has no synchronous gunzip (see syncGunzipAvailable)');
    this.handle = found.handle;
    this.state = found.state;
    // Replaces the stream's handler: an error is kept and thrown from the write that hit it.
    this.handle.onerror = (message, errno, code) => {
      this.failure ??= Object.assign(new Error(`gzip: ${message}`), { errno, ...(code ? { code } : {}) });
    };
  }

  /** Inflate `input` whole (pausing while `output` says so). */
  write(input: Uint8Array): Promise<void> {
    return this.run(input, constants.Z_NO_FLUSH);
  }

  /** No more input: the stream must be complete. Closes the stream. */
  async finish(): Promise<void> {
    try {
      await this.run(new Uint8Array(0), constants.Z_FINISH);
    } finally {
      this.close();
    }
  }

  /** Free zlib's state (also after a failure). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stream.close();
  }

  private async run(input: Uint8Array, flush: number): Promise<void> {
    if (this.closed) throw new Error('gzip: write after close');
    let inOff = 0;
    let inLen = input.byteLength;
    for (;;) {
      const out = this.allocate();
      this.handle.writeSync(flush, input, inOff, inLen, out, 0, out.length);
      if (this.failure) {
        this.close();
        throw this.failure;
      }
      const availOut = this.state[0] as number;
      const availIn = this.state[1] as number;
      inOff += inLen - availIn;
      inLen = availIn;
      const produced = out.length - availOut;
      if (produced > 0) {
        const waited = this.output(produced === out.length ? out : out.subarray(0, produced));
        if (waited) await waited;
      }
      // Room left in the output: zlib took all it could from the input.
      if (availOut !== 0) return;
    }
  }
}
