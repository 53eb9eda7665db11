/**
 * Effects with no file system: every ownership effect is checked by a real {@link Ledger}
 * and recorded, and no byte is written. For testing a stage's ownership behaviour, and for
 * examples, without touching the disk.
 *
 * @module
 */
import { InternalError } from './errors.js';
import { Ledger, type Effects, type OwnershipEffect, type ReplyOf } from './ownership.js';

/**
 * `CreateTemp` answers a name (`/mem/N`) and registers it; `HandOver`, `MoveIntoPlace`
 * and `Release` are checked against the ledger (a broken rule throws `OwnershipError`
 * before anything is recorded as done); `Inflate` and `Compress` need bytes, so they throw
 * unless a subclass overrides {@link LedgerEffects.transcode}.
 *
 * @example
 * ```ts
 * import { LedgerEffects } from 'occystrap/core';
 * const effects = new LedgerEffects();
 * const file = await effects.perform({ _tag: 'CreateTemp', owner: 'input', purpose: 'layer' });
 * await effects.perform({ _tag: 'Release', file, owner: 'input' });
 * console.log(effects.ledger.liveCount(), effects.released); // 0 [ 1 ]
 * ```
 */
export class LedgerEffects implements Effects {
  readonly ledger = new Ledger();
  /** Every effect performed, in order. */
  readonly performed: OwnershipEffect[] = [];
  /** The ids of the files released, in order. */
  readonly released: number[] = [];

  async perform<E extends OwnershipEffect>(effect: E): Promise<ReplyOf<E>> {
    this.performed.push(effect);
    const reply = (v: unknown) => v as ReplyOf<E>;
    switch (effect._tag) {
      case 'CreateTemp': {
        const e = this.ledger.register(effect.owner, effect.purpose, (id) => `/mem/${id}`);
        return reply({ id: e.id, path: e.path });
      }
      case 'HandOver':
        this.ledger.handOver(effect.file, effect.from, effect.to);
        return reply(undefined);
      case 'MoveIntoPlace':
        this.ledger.beginMove(effect.file, effect.owner, effect.destination);
        this.ledger.finishMove(effect.file);
        return reply({ copied: false });
      case 'Release':
        this.ledger.release(effect.file, effect.owner);
        this.released.push(effect.file.id);
        return reply(undefined);
      default:
        return reply(await this.transcode(effect));
    }
  }

  /** `Inflate` and `Compress`: refused here (there are no bytes); a subclass answers them. */
  protected async transcode(effect: Extract<OwnershipEffect, { _tag: 'Inflate' | 'Compress' }>): Promise<unknown> {
    throw new InternalError(`LedgerEffects cannot ${effect._tag === 'Inflate' ? 'inflate' : 'compress'}: it holds no bytes; override transcode() to answer ${effect._tag}`);
  }
}
