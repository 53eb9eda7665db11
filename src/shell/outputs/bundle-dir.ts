/**
 * What the runtime-bundle outputs (`oci://`, `mounts://`) share: a destination that must
 * be missing or empty, a private working directory beside it, a layer's tar applied by
 * the engine, and `config.json` + `container-config.json`.
 *
 * @module
 */
import { promises as fs, createReadStream } from 'node:fs';
import * as path from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import { type ConfigElement, type DataPayload, type LayerDescriptor, tarOf } from '../../core/element.js';
import { outputError } from '../../core/errors.js';
import type { StageContext } from '../../core/pipeline/types.js';
import { runtimeSpec, type UserDatabase } from '../../core/plans/runtime-spec.js';
import type { TarConsumers } from './tar-consumers.js';

/**
 * `target` must be missing or an empty directory (checked before a layer is read, and
 * again just before the rename, when `clear` removes the empty directory).
 */
export async function checkFreshTarget(target: string, description: string, advice: string, clear = false): Promise<void> {
  let st;
  try {
    st = await fs.lstat(target);
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOENT') return;
    throw e;
  }
  const refuse = (what: string) => outputError(`${description}: ${target} ${what}; ${advice}`);
  if (!st.isDirectory()) throw refuse('exists and is not a directory');
  if ((await fs.readdir(target)).length > 0) throw refuse('exists and is not empty');
  if (clear) await fs.rmdir(target);
}

/** A fresh private (0700) directory beside `target`, on its filesystem, for the whole tree to be built in. */
export async function workDirBeside(target: string): Promise<string> {
  const parent = path.dirname(target);
  await fs.mkdir(parent, { recursive: true });
  return fs.mkdtemp(path.join(parent, `.${path.basename(target)}.occystrap-`));
}

/**
 * Apply a layer's tar with `apply`, then release the tar, also when it fails. A `Consumed`
 * layer was applied as it streamed: this waits for that work to end instead; a temp-file
 * tar is applied when no consumer works.
 */
export async function applyTarPayload(
  consumers: TarConsumers,
  layer: LayerDescriptor,
  payload: DataPayload,
  ctx: StageContext,
  description: string,
  apply: (tar: AsyncIterable<Uint8Array>) => Promise<void>,
): Promise<number> {
  if (payload._tag === 'Consumed') return consumers.finish(layer, payload.consumed);
  const tar = tarOf(payload);
  try {
    if (!tar) throw outputError(`${description}: layer ${layer.index} arrived without its tar`);
    await consumers.exclusive(layer.index, ctx.signal, () => apply(createReadStream(tar.file.path, { highWaterMark: 1 << 20 })));
    return tar.size;
  } finally {
    if (tar) await ctx.effects.perform({ _tag: 'Release', file: tar.file, owner: ctx.owner });
  }
}

/** `config.json` (the runtime spec, indented 4) and `container-config.json` (the config's own bytes) in `dir`. */
export async function writeBundleConfig(dir: string, config: ConfigElement, users: UserDatabase, description: string): Promise<void> {
  const spec = runtimeSpec(config.config, users);
  if (E.isLeft(spec)) throw outputError(`${description}: ${spec.left}; the runtime spec cannot name the image's user`);
  await fs.writeFile(path.join(dir, 'config.json'), `${JSON.stringify(spec.right, null, 4)}\n`, { mode: 0o644, flag: 'wx' });
  await fs.writeFile(path.join(dir, 'container-config.json'), config.raw, { mode: 0o644, flag: 'wx' });
}
