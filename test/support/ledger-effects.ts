/**
 * Effects that only keep a ledger (no files): the ownership bookkeeping of a run, checked
 * by the real `Ledger`, with every effect and every released file id recorded.
 *
 * @module
 */
import { Ledger, type Effects, type OwnershipEffect, type ReplyOf } from '../../src/core/ownership.js';

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

  /** `Inflate` and `Compress`: none by default (a subclass answers them). */
  protected async transcode(effect: Extract<OwnershipEffect, { _tag: 'Inflate' | 'Compress' }>): Promise<unknown> {
    throw new Error(`unreachable: ${effect._tag}`);
  }
}
