/**
 * Writing final files atomically: to a temp name beside the target (registered with the
 * run's scope, so an interrupted run leaves nothing), then renamed into place.
 *
 * @module
 */
import { promises as fs } from 'node:fs';
import type { Effects } from '../../core/ownership.js';

/**
 * The mode of files we publish: temp files are created 0600 (private while in flight);
 * outputs get the usual 0666 less the umask before they are renamed into place.
 */
export const PUBLISHED_FILE_MODE = 0o666 & ~process.umask();

export async function publishMode(p: string): Promise<void> {
  await fs.chmod(p, PUBLISHED_FILE_MODE);
}

export async function writeFileAtomically(effects: Effects, owner: string, target: string, bytes: Uint8Array, purpose = 'file'): Promise<void> {
  const file = await effects.perform({ _tag: 'CreateTemp', owner, purpose, location: { _tag: 'Beside', target } });
  try {
    await fs.writeFile(file.path, bytes, { flag: 'r+' });
    await publishMode(file.path);
  } catch (e) {
    await effects.perform({ _tag: 'Release', file, owner });
    throw e;
  }
  try {
    await effects.perform({ _tag: 'MoveIntoPlace', file, owner, destination: target });
  } catch (e) {
    await effects.perform({ _tag: 'Release', file, owner });
    throw e;
  }
}

