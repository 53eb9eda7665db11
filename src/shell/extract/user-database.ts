/**
 * A rootfs's /etc/passwd and /etc/group, for the runtime spec's user: each read with the
 * store's no-follow, regular-file-only, byte-capped reader (at most 1 MiB); a link, a
 * non-regular file or a bigger one counts as absent.
 *
 * @module
 */
import type { UserDatabase } from '../../core/plans/runtime-spec.js';
import { readRegularFile } from '../fs/store-fs.js';

const MAX_USER_DB_BYTES = 1 << 20;

/** `where(name)` is the host path of `etc/passwd` or `etc/group` in the rootfs, or undefined when it has none. */
export async function readUserDatabase(where: (name: 'etc/passwd' | 'etc/group') => string | undefined): Promise<UserDatabase> {
  const read = async (name: 'etc/passwd' | 'etc/group'): Promise<string | undefined> => {
    const file = where(name);
    if (file === undefined) return undefined;
    const bytes = await readRegularFile(file, MAX_USER_DB_BYTES).catch(() => undefined);
    return bytes === undefined ? undefined : Buffer.from(bytes).toString('utf8');
  };
  const passwd = await read('etc/passwd');
  const group = await read('etc/group');
  return { ...(passwd !== undefined ? { passwd } : {}), ...(group !== undefined ? { group } : {}) };
}
