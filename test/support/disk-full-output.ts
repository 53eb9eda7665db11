/**
 * An output that fails at the first layer as a full disk would, after releasing that
 * layer's tar (it took ownership); the tests check what the rest of the run releases.
 *
 * @module
 */
import { Forms, tarOf } from '../../src/core/element.js';
import type { ImageOutput } from '../../src/core/pipeline/types.js';

export function diskFullOutput(order: ImageOutput['order']): ImageOutput {
  return {
    description: 'fails at the first layer (disk full)',
    order,
    wants: async () => Forms.tar,
    async consume(elements, ctx) {
      for await (const e of elements) {
        if (e._tag !== 'Layer') continue;
        if (e.payload._tag === 'Tar') await ctx.effects.perform({ _tag: 'Release', file: tarOf(e.payload)!.file, owner: ctx.owner });
        throw new Error('disk full');
      }
      throw new Error('unreachable');
    },
  };
}
