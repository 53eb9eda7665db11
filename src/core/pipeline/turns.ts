/**
 * Waiting for a turn decided by shared state (a destination's claims, see
 * `TarPlacement`): callers wait until `decide` answers, and whoever changes the state
 * calls `wake`.
 *
 * @module
 */
import { AbortError } from '../errors.js';

export class Turns {
  private readonly waiting = new Set<() => void>();

  /**
   * `decide()` until it answers something other than `undefined` ("wait"), re-asked after
   * every `wake`.
   *
   * - Errors: rejects with an {@link AbortError} when `signal` aborts while waiting;
   *   whatever `decide` throws.
   */
  async until<T>(decide: () => T | undefined, signal: AbortSignal): Promise<T> {
    for (;;) {
      if (signal.aborted) throw new AbortError(signal.reason);
      const answer = decide();
      if (answer !== undefined) return answer;
      await new Promise<void>((resolve, reject) => {
        const done = () => {
          this.waiting.delete(done);
          signal.removeEventListener('abort', aborted);
          resolve();
        };
        const aborted = () => {
          this.waiting.delete(done);
          reject(new AbortError(signal.reason));
        };
        this.waiting.add(done);
        signal.addEventListener('abort', aborted, { once: true });
      });
    }
  }

  /** The state changed: every waiter asks again. */
  wake(): void {
    for (const w of [...this.waiting]) w();
  }
}
