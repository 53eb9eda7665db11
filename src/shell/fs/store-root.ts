/**
 * What the two store-like outputs (`dir://`, `ocidir://`) share about their directory and
 * their run: the real root resolved once, the root created when missing (and removed
 * again, if empty, by a rollback), and the store operations a forced rollback waits for.
 *
 * @module
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { outputError } from '../../core/errors.js';

/** The directory a store output writes, as given and as resolved. */
export class StoreRoot {
  /** As given, absolute. */
  readonly requested: string;
  private real: string | undefined;

  constructor(
    given: string,
    private readonly description: string,
  ) {
    this.requested = path.resolve(given);
  }

  /** The real path (the user may give a symlink); undefined while it does not exist. */
  async resolve(): Promise<string | undefined> {
    if (this.real !== undefined) return this.real;
    try {
      this.real = await fs.realpath(this.requested);
      return this.real;
    } catch (e) {
      if ((e as { code?: string }).code === 'ENOENT') return undefined;
      throw e;
    }
  }

  /**
   * The real root, created (with missing parents) when absent. `created` is the top
   * directory made, for a rollback's {@link removeEmptyDirs}. A non-directory there is an
   * `EOUTPUT` error ending with `hint`.
   */
  async ensure(hint = ''): Promise<{ readonly root: string; readonly created: string | undefined }> {
    let created: string | undefined;
    try {
      const st = await fs.stat(this.requested);
      if (!st.isDirectory()) throw outputError(`${this.description}: ${this.requested} exists and is not a directory${hint}`);
    } catch (e) {
      if ((e as { code?: string }).code !== 'ENOENT') throw e;
      try {
        created = await fs.mkdir(this.requested, { recursive: true });
      } catch (err) {
        throw outputError(`${this.description}: cannot create ${this.requested} (${(err as Error).message}); check that its parent exists and is writable`);
      }
    }
    return { root: (await this.resolve()) as string, created };
  }

  /** rmdir `created` and the directories made above it, up to the first that is not empty. */
  async removeCreated(created: string): Promise<void> {
    await removeEmptyDirs(this.requested, created);
  }
}

/** rmdir `dir` and its parents up to `top`, stopping at the first that is not empty. */
export async function removeEmptyDirs(dir: string, top: string): Promise<void> {
  for (let d = dir; ; d = path.dirname(d)) {
    try {
      await fs.rmdir(d);
    } catch {
      return;
    }
    if (d === top || path.dirname(d) === d) return;
  }
}

/** How long a forced rollback waits for store operations already under way. */
export const FORCED_UNDO_WAIT_MS = 2_000;

/** Store operations under way, so a forced rollback can wait a moment for them. */
export class InFlight {
  private readonly pending = new Set<Promise<void>>();

  /** Run `op`, counted as under way until it settles. */
  track<T>(op: () => Promise<T>): Promise<T> {
    const done = op();
    const tracked: Promise<void> = done.then(
      () => void this.pending.delete(tracked),
      () => void this.pending.delete(tracked),
    );
    this.pending.add(tracked);
    return done;
  }

  /** Every operation under way has settled. */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.pending]);
  }

  /** Every operation under way has settled, or `ms` has passed. */
  async settledWithin(ms: number = FORCED_UNDO_WAIT_MS): Promise<void> {
    if (this.pending.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
    });
    await Promise.race([this.settled(), timeout]);
    clearTimeout(timer);
  }
}
