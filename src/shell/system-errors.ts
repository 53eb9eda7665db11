/**
 * Operating-system errors (errno codes from node:fs) in words: what failed, on which
 * path, why, and what to do. The CLI puts the endpoint's URI in front.
 *
 * @module
 */

/** Where the failing path belongs: it decides the advice. */
export type ErrorPlace = 'destination' | 'temp' | 'source';

interface Meaning {
  readonly what: string;
  readonly advice: (place: ErrorPlace) => string;
}

const elsewhere = (place: ErrorPlace) =>
  place === 'temp' ? 'choose another --temp-dir' : place === 'destination' ? 'write the destination elsewhere' : 'check the source';

const MEANINGS: Record<string, Meaning> = {
  ENOSPC: { what: 'no space left on the device', advice: (p) => `free some space or ${elsewhere(p)}` },
  EDQUOT: { what: 'the disk quota is exceeded', advice: (p) => `free some space or ${elsewhere(p)}` },
  EFBIG: { what: 'the file is too large for this file system', advice: elsewhere },
  EROFS: {
    what: 'the file system is read-only',
    advice: (p) => (p === 'temp' ? 'choose a --temp-dir on a writable file system' : p === 'destination' ? 'write the destination to a writable file system' : 'check the source'),
  },
  EACCES: { what: 'permission denied', advice: (p) => `check the permissions of the path or ${elsewhere(p)}` },
  EPERM: { what: 'operation not permitted', advice: (p) => `check the permissions and attributes of the path or ${elsewhere(p)}` },
  ENOTDIR: { what: 'a part of the path is not a directory', advice: () => 'check the path: a file stands where a directory is expected' },
  EISDIR: { what: 'it is a directory', advice: () => 'give the path of a file, not of a directory' },
  ENAMETOOLONG: { what: 'the name is too long', advice: () => 'use a shorter path (at most 255 bytes per name)' },
  EEXIST: { what: 'it already exists', advice: () => 'remove it or choose another path' },
  ENOTEMPTY: { what: 'the directory is not empty', advice: () => 'remove what is in it or choose another path' },
  ENOENT: { what: 'it does not exist (or was removed during the run)', advice: () => 'check the path and that nothing else removes files there' },
  ELOOP: { what: 'too many levels of symbolic links', advice: () => 'check the path for a symbolic link loop' },
  EMFILE: { what: 'too many open files', advice: () => 'raise the open-file limit (ulimit -n) or lower -j' },
  ENFILE: { what: 'too many open files in the system', advice: () => 'close other programs or lower -j' },
  EIO: { what: 'an input/output error', advice: () => 'check the disk and the system log' },
  EBUSY: { what: 'it is busy', advice: () => 'try again when nothing else uses it' },
  ETXTBSY: { what: 'it is busy', advice: () => 'try again when nothing else uses it' },
  ENXIO: { what: 'no such device', advice: () => 'give the path of a regular file' },
  ENODEV: { what: 'no such device', advice: () => 'give the path of a regular file' },
  EINVAL: { what: 'the operation is not valid here', advice: () => 'check the path' },
};

const VERBS: Record<string, string> = {
  open: 'open',
  mkdir: 'create directory',
  mkdtemp: 'create a directory in',
  rename: 'rename',
  write: 'write',
  read: 'read',
  unlink: 'remove',
  rmdir: 'remove directory',
  stat: 'inspect',
  lstat: 'inspect',
  fstat: 'inspect',
  scandir: 'list',
  copyfile: 'copy to',
  chmod: 'set the mode of',
  fchmod: 'set the mode of',
  fsync: 'flush',
  close: 'close',
  link: 'link',
  symlink: 'link',
  access: 'access',
};

export interface SystemError {
  readonly code: string;
  readonly syscall?: string;
  readonly path?: string;
  readonly dest?: string;
  readonly message: string;
}

/** The first error in `e`'s cause chain that carries a known errno code. */
export function findSystemError(e: unknown): SystemError | undefined {
  const seen = new Set<unknown>();
  let cur: unknown = e;
  while (typeof cur === 'object' && cur !== null && !seen.has(cur)) {
    seen.add(cur);
    const code = (cur as { code?: unknown }).code;
    if (typeof code === 'string' && Object.hasOwn(MEANINGS, code)) return cur as SystemError;
    cur = (cur as { cause?: unknown }).cause;
  }
  return undefined;
}

/** The path the error is about: the destination of a copy or rename, else its path. */
export function pathOf(e: SystemError): string | undefined {
  return e.dest ?? e.path;
}

/** "cannot write /x/y: no space left on the device (ENOSPC); free some space or …" */
export function describeSystemError(e: SystemError, place: ErrorPlace): string {
  const meaning = MEANINGS[e.code] as Meaning;
  const verb = (e.syscall && VERBS[e.syscall]) ?? e.syscall ?? 'use';
  const target = pathOf(e);
  return `cannot ${verb}${target ? ` ${target}` : ''}: ${meaning.what} (${e.code}); ${meaning.advice(place)}`;
}
