/**
 * A rootfs's /etc/passwd and /etc/group, for the runtime spec's user: each opened without
 * following a link, read only if it is a regular file of at most 1 MiB.
 *
 * @module
 */
import { constants, promises as fs } from 'node:fs';
import type { UserDatabase } from '../../core/plans/runtime-spec.js';

const MAX_USER_DB_BYTES = 1 << 20;

/** `where(name)` is the host path of `etc/passwd` or `etc/group` in the rootfs, or undefined when it has none. */
export async function readUserDatabase(where: (name: 'etc/passwd' | 'etc/group') => string | undefined): Promise<UserDatabase> {
  const read = async (name: 'etc/passwd' | 'etc/group'): Promise<string | undefined> => {
    const file = where(name);
    if (file === undefined) return undefined;
    let handle;
    try {
      handle = await fs.open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch {
      return undefined;
    }
    try {
      const st = await handle.stat();
      if (!st.isFile() || st.size > MAX_USER_DB_BYTES) return undefined;
      return (await handle.readFile()).toString('utf8');
    } finally {
      await handle.close();
    }
  };
  const passwd = await read('etc/passwd');
  const group = await read('etc/group');
  return { ...(passwd !== undefined ? { passwd } : {}), ...(group !== undefined ? { group } : {}) };
}
