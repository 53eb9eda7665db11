/**
 * Partial outputs still being written, with the action that removes each. An output
 * registers its rollback when it starts changing the destination and withdraws it when
 * it has finished (or rolled back itself). A run that must stop before the stages have
 * unwound (a second signal, or one that does not unwind in time) runs what is still
 * registered, so even a forced exit leaves no partial output.
 *
 * @module
 */

type Rollback = () => Promise<void>;

const registered = new Set<Rollback>();

/** Register a rollback; returns the function that withdraws it. */
export function trackPartialOutput(rollback: Rollback): () => void {
  registered.add(rollback);
  return () => registered.delete(rollback);
}

/** Run and withdraw every registered rollback (forced exits only). */
export async function rollBackPartialOutputs(): Promise<void> {
  const pending = [...registered].reverse();
  registered.clear();
  for (const rollback of pending) {
    try {
      await rollback();
    } catch {
      // Best effort on the way out.
    }
  }
}
