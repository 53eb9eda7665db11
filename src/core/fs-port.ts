/**
 * The file-system operations a temp-file scope needs, as a port. The shell provides the
 * real one (node:fs); property tests provide in-memory ones with injected faults and
 * scheduler-controlled timing.
 *
 * @module
 */

export interface TempFsPort {
  /** Create a fresh, empty, private directory under `parent`; return its path. */
  makeRunDir(parent: string, prefix: string): Promise<string>;
  /** Create an empty file; fail if it exists. */
  createExclusive(path: string): Promise<void>;
  /** Atomic rename; rejects with `code: 'EXDEV'` across filesystems. */
  rename(from: string, to: string): Promise<void>;
  copyFile(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  /** Remove an empty directory (rejects with `code: 'ENOTEMPTY'` otherwise). */
  removeDir(path: string): Promise<void>;
  listDir(path: string): Promise<string[]>;
}

/** Error codes file-system ports use. */
export function errorCode(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && typeof (e as { code?: unknown }).code === 'string' ? (e as { code: string }).code : undefined;
}
