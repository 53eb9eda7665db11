/**
 * The {@link TarConsumerOffer}s of a destination that applies layer tars as they stream
 * (`oci://`, `mounts://`): the input hands a layer's bytes over as it reads them, and the
 * destination's engine applies them at once, so no temp file holds the tar in between.
 *
 * One layer is applied at a time: a consumer is granted only when no other consumer works
 * and no `putLayer` of a temp-file tar runs, and when the destination's own rule says the
 * layer may start (`oci://`: every earlier layer applied). A `putLayer` with a temp file
 * waits, the other way round, until no consumer works ({@link TarConsumers.exclusive}).
 *
 * @module
 */
import type { ConsumedTar, LayerDescriptor, TarConsumer, TarConsumerOffer } from '../../core/element.js';
import { AbortError, outputError } from '../../core/errors.js';
import { Turns } from '../../core/pipeline/turns.js';

/** Bytes a consumer holds between the input and the engine, at most (then `write` waits). */
const QUEUE_BYTES = 4 << 20;

/**
 * Chunks from the input to the engine, bounded by {@link QUEUE_BYTES}. The engine reads
 * it as an async iterable; `abort` makes that read throw; `drop` (the engine stopped
 * reading) makes every later `push` resolve at once, so the input is never stuck.
 */
class ChunkQueue implements AsyncIterable<Uint8Array> {
  private chunks: Uint8Array[] = [];
  private bytes = 0;
  private ended = false;
  private failure: Error | undefined;
  private dropped = false;
  private wakeReader: (() => void) | undefined;
  private wakeWriter: (() => void) | undefined;

  async push(chunk: Uint8Array): Promise<void> {
    if (this.dropped || this.ended || this.failure) return;
    this.chunks.push(chunk);
    this.bytes += chunk.length;
    this.notifyReader();
    while (this.bytes > QUEUE_BYTES && !this.dropped && !this.failure) {
      await new Promise<void>((resolve) => (this.wakeWriter = resolve));
    }
  }

  end(): void {
    this.ended = true;
    this.notifyReader();
  }

  abort(reason: Error): void {
    this.failure ??= reason;
    this.notifyReader();
    this.notifyWriter();
  }

  drop(): void {
    this.dropped = true;
    this.chunks = [];
    this.bytes = 0;
    this.notifyWriter();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array, void, undefined> {
    for (;;) {
      if (this.failure) throw this.failure;
      const chunk = this.chunks.shift();
      if (chunk) {
        this.bytes -= chunk.length;
        if (this.bytes <= QUEUE_BYTES) this.notifyWriter();
        yield chunk;
        continue;
      }
      if (this.ended) return;
      await new Promise<void>((resolve) => (this.wakeReader = resolve));
    }
  }

  private notifyReader(): void {
    const wake = this.wakeReader;
    this.wakeReader = undefined;
    wake?.();
  }

  private notifyWriter(): void {
    const wake = this.wakeWriter;
    this.wakeWriter = undefined;
    wake?.();
  }
}

interface Granted {
  readonly id: number;
  readonly index: number;
  readonly queue: ChunkQueue;
  /** The engine's work on the layer: resolves when it applied the whole tar. */
  readonly work: Promise<void>;
  /** `end` was called (the input verified the bytes), or `abort`. */
  outcome: 'open' | 'ended' | 'aborted';
  delivered: boolean;
}

export interface TarConsumersOptions {
  /** How the destination is named in messages. */
  readonly description: string;
  /** May layer `index` start now (its own ordering rule; asked again after every change)? */
  readonly mayStart: (index: number) => boolean;
}

/** See the module comment. One instance per run. */
export class TarConsumers {
  private readonly turns = new Turns();
  private readonly granted = new Map<number, Granted>();
  private working: Granted | undefined;
  private exclusiveRuns = 0;
  private closed = false;
  private ids = 0;

  constructor(private readonly options: TarConsumersOptions) {}

  /**
   * An offer for `layer` whose consumer applies the tar with `apply` (given the bytes as
   * an async iterable, the input's back-pressure through it).
   *
   * - Errors: `claim` rejects with an AbortError when its signal aborts or the run ends
   *   while it waits; `apply`'s failure is kept and raised by {@link finish}.
   * - Cancellation: {@link close} aborts every consumer's bytes, which fails its `apply`.
   */
  offer(layer: LayerDescriptor, apply: (tar: AsyncIterable<Uint8Array>) => Promise<void>): TarConsumerOffer {
    return {
      claim: async (signal) => {
        await this.turns.until(() => (this.closed ? 'closed' : this.free() && this.options.mayStart(layer.index) ? 'now' : undefined), signal);
        if (this.closed) throw new AbortError(new Error(`${this.options.description} stopped`));
        return this.grant(layer.index, apply);
      },
    };
  }

  /** The destination's state changed (a layer was applied): waiting claims ask again. */
  changed(): void {
    this.turns.wake();
  }

  /**
   * Run `work` (a `putLayer` of layer `index` with a temp-file tar) when no consumer works,
   * keeping consumers from starting until it ends.
   *
   * - Errors: `work`'s; an `EOUTPUT` error when a consumer was taken for this layer (it must
   *   arrive `Consumed`); an AbortError when `signal` aborts while waiting.
   */
  async exclusive<T>(index: number, signal: AbortSignal, work: () => Promise<T>): Promise<T> {
    for (const g of this.granted.values()) {
      if (g.index === index && !g.delivered) throw outputError(`${this.options.description}: layer ${index} arrived as a file after a consumer was taken for it`);
    }
    await this.turns.until(() => (this.working ? undefined : true), signal);
    this.exclusiveRuns++;
    try {
      return await work();
    } finally {
      this.exclusiveRuns--;
      this.turns.wake();
    }
  }

  /**
   * The layer arrived `Consumed`: wait for the engine to finish it. Errors: the engine's
   * failure; an `EOUTPUT` error when the payload names a consumer this run did not grant
   * for this layer, or one the input did not end.
   */
  async finish(layer: LayerDescriptor, consumed: ConsumedTar): Promise<number> {
    const g = this.granted.get(consumed.consumer);
    if (!g || g.index !== layer.index || g.delivered) throw outputError(`${this.options.description}: layer ${layer.index} arrived consumed by a consumer it was not given`);
    g.delivered = true;
    if (g.outcome !== 'ended') throw outputError(`${this.options.description}: layer ${layer.index} arrived consumed before its bytes were ended`);
    await g.work;
    return consumed.size;
  }

  /** At commit: every consumer granted was delivered. */
  checkAllDelivered(): void {
    for (const g of this.granted.values()) {
      if (!g.delivered) throw outputError(`${this.options.description}: layer ${g.index} was taken by a consumer and never delivered`);
    }
  }

  /**
   * The run ends (abort): waiting claims fail, every consumer's bytes are aborted, and this
   * resolves once every engine's work has settled, so nothing writes into what the caller
   * removes next.
   */
  async close(): Promise<void> {
    this.closed = true;
    this.turns.wake();
    const stopped = new Error(`${this.options.description} stopped`);
    for (const g of this.granted.values()) g.queue.abort(stopped);
    await Promise.allSettled([...this.granted.values()].map((g) => g.work));
  }

  private free(): boolean {
    return this.working === undefined && this.exclusiveRuns === 0;
  }

  private grant(index: number, apply: (tar: AsyncIterable<Uint8Array>) => Promise<void>): TarConsumer {
    const id = ++this.ids;
    const queue = new ChunkQueue();
    // Taken before any await, so no other claim can start in between.
    const g: Granted = {
      id,
      index,
      queue,
      work: Promise.resolve()
        .then(() => apply(queue))
        .finally(() => {
          queue.drop();
          if (this.working === g) this.working = undefined;
          this.turns.wake();
        }),
      outcome: 'open',
      delivered: false,
    };
    g.work.catch(() => undefined); // raised by finish()
    this.working = g;
    this.granted.set(id, g);
    return {
      id,
      write: (chunk) => queue.push(chunk),
      end: () => {
        if (g.outcome !== 'open') return;
        g.outcome = 'ended';
        queue.end();
      },
      abort: (reason) => {
        if (g.outcome !== 'open') return;
        g.outcome = 'aborted';
        queue.abort(reason);
      },
    };
  }
}
