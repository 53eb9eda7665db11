/**
 * Paths inside archives and stores: normalised, relative, and never escaping their root.
 *
 * @module
 */
import * as E from 'fp-ts/lib/Either.js';

/**
 * Normalise a path found inside an archive (an entry name, or a path a manifest points
 * at): strip `./` and duplicate slashes; reject absolute paths, `..` components,
 * backslashes, drive letters and NUL (CVE-2014-9358, CVE-2021-32804, ggcr #2330).
 */
export function normalizeArchivePath(raw: string): E.Either<string, string> {
  if (raw.includes('\0')) return E.left('contains a NUL byte');
  if (raw.includes('\\')) return E.left('contains a backslash');
  if (/^(?:\.\/+)*[A-Za-z]:/.test(raw)) return E.left('starts with a drive letter');
  if (raw.startsWith('/')) return E.left('is absolute');
  const parts: string[] = [];
  for (const part of raw.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') return E.left('has a ".." component');
    parts.push(part);
  }
  if (parts.length === 0) return E.left('is empty');
  return E.right(parts.join('/'));
}

/** Directory part of a normalised path ('' at the top). */
export function archiveDirname(p: string): string {
  const i = p.lastIndexOf('/');
  return i < 0 ? '' : p.slice(0, i);
}

/**
 * Resolve a symlink target written in an archive, relative to the link's directory,
 * staying inside the archive: `..` may climb only as far as the archive root.
 */
export function resolveLinkTarget(linkPath: string, target: string): E.Either<string, string> {
  if (target.startsWith('/')) return E.left(`link ${linkPath} points at an absolute path`);
  const parts = archiveDirname(linkPath).split('/').filter((p) => p !== '');
  for (const part of target.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (parts.length === 0) return E.left(`link ${linkPath} -> ${target} leaves the archive`);
      parts.pop();
      continue;
    }
    parts.push(part);
  }
  return parts.length === 0 ? E.left(`link ${linkPath} -> ${target} points at the archive root`) : E.right(parts.join('/'));
}
