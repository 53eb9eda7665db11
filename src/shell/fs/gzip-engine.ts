/**
 * The gzip engine layers are compressed with: ISA-L (igzip, the native addon that
 * `npm run build` compiles when the C compiler and Debian's `libisal-dev` are there), else
 * node:zlib. Each compresses one block into one gzip member with mtime 0 and no name.
 *
 * `OCCYSTRAP_GZIP_ENGINE=zlib` picks zlib even when ISA-L is built: zlib's bytes are the
 * same on every CPU, ISA-L's only on the same CPU family and library version (its code
 * paths differ per instruction set), so pick zlib where digests must match across machines.
 *
 * @module
 */
import { promisify } from 'node:util';
import { constants as zlibConstants, gzip as gzipCallback } from 'node:zlib';
import { usageError } from '../../core/errors.js';
import { loadAddon } from './native-addons.js';

export type GzipEngineName = 'isa-l' | 'zlib';

export interface GzipEngine {
  readonly name: GzipEngineName;
  /** The engine's own level (ISA-L: 0–3; zlib: 1–9). */
  readonly level: number;
  /** One gzip member holding `block`; the block must not change until the promise settles. */
  compressBlock(block: Buffer): Promise<Buffer>;
}

/** ISA-L level 2: 10× zlib's speed here, output 6 % larger than zlib's level 6 on text. */
export const ISAL_LEVEL = 2;
/** zlib level: its default, the usual speed/size balance. */
export const ZLIB_LEVEL = 6;

interface IsalAddon {
  compress(input: Uint8Array, output: Uint8Array, level: number): Promise<number>;
  readonly maxLevel: number;
}

const gzipZlib = promisify(gzipCallback);

const zlibEngine: GzipEngine = {
  name: 'zlib',
  level: ZLIB_LEVEL,
  compressBlock: (block) => gzipZlib(block, { level: ZLIB_LEVEL, strategy: zlibConstants.Z_DEFAULT_STRATEGY }),
};

function isalEngine(addon: IsalAddon): GzipEngine {
  return {
    name: 'isa-l',
    level: ISAL_LEVEL,
    async compressBlock(block) {
      // Room for stored blocks (incompressible input) plus header and trailer; a 0 means
      // it did not fit, and a buffer twice the size always does.
      let room = block.length + (block.length >> 4) + 1024;
      for (;;) {
        const output = Buffer.allocUnsafe(room);
        const written = await addon.compress(block, output, ISAL_LEVEL);
        if (written > 0) return output.subarray(0, written);
        room *= 2;
      }
    },
  };
}

/** The engine `OCCYSTRAP_GZIP_ENGINE` names, if any; another value is a usage error. */
export function wantedGzipEngine(env: NodeJS.ProcessEnv): GzipEngineName | undefined {
  const wanted = env.OCCYSTRAP_GZIP_ENGINE?.trim();
  if (wanted === undefined || wanted === '') return undefined;
  if (wanted !== 'isa-l' && wanted !== 'zlib') throw usageError(`OCCYSTRAP_GZIP_ENGINE=${JSON.stringify(wanted)} is not a gzip engine; use isa-l or zlib`);
  return wanted;
}

/**
 * The engine `env` asks for: `OCCYSTRAP_GZIP_ENGINE` (`isa-l` or `zlib`) if set, else
 * ISA-L when its addon is built and loads, else zlib. Asking for `isa-l` when it does not
 * load is a usage error that says why and how to build it.
 */
export function chooseGzipEngine(env: NodeJS.ProcessEnv): GzipEngine {
  const wanted = wantedGzipEngine(env);
  if (wanted === 'zlib') return zlibEngine;
  const addon = loadAddon<IsalAddon>('isal-gzip');
  if (typeof addon !== 'string') return isalEngine(addon);
  if (wanted === 'isa-l') throw usageError(`OCCYSTRAP_GZIP_ENGINE=isa-l, but ${addon}; install libisal-dev and a C compiler, then run npm run build`);
  return zlibEngine;
}

let chosen: GzipEngine | undefined;

/** This process's engine: {@link chooseGzipEngine} of its environment, chosen once. */
export function gzipEngine(): GzipEngine {
  chosen ??= chooseGzipEngine(process.env);
  return chosen;
}
