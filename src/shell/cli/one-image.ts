/**
 * One image through the pipeline, as `process` runs it (once, or once per platform of a
 * multi-platform copy): errors attributed to the end they belong to, progress shown as
 * the reporter allows, the input closed on every path, and the network counters of both
 * ends added up for the summary.
 *
 * @module
 */
import { runPipeline } from '../../core/pipeline/compose.js';
import type { ImageFilter, ImageInput, ImageOutput, OutputSummary } from '../../core/pipeline/types.js';
import { destinationArea } from '../endpoints.js';
import type { Reporter } from '../log.js';
import { RunProgress } from '../progress.js';
import { ErrorAttribution } from './attribution.js';
import type { GlobalSettings } from './options.js';
import type { ScopedRun } from './run-pipeline.js';

/** What the two ends counted: blob bytes each way, retries and rate limits of both, layers inflated while downloading. */
export interface RunCounters {
  readonly downloaded: number;
  readonly uploaded: number;
  readonly retries: number;
  readonly rateLimited: number;
  readonly inflated: number;
}

export interface OneImage {
  readonly input: ImageInput;
  readonly output: ImageOutput;
  /** The destination URI, for attributing errors to its area. */
  readonly destination: string;
  readonly filters: readonly ImageFilter[];
  readonly settings: Pick<GlobalSettings, 'tempDir' | 'parallel'>;
  readonly reporter: Reporter;
}

/**
 * Run `job` inside `run`'s scope.
 *
 * - Errors: the pipeline's error, explained as the source's, the destination's or the
 *   temp dir's (see {@link ErrorAttribution}).
 * - Cancellation: `run.signal`.
 * - Ownership: the scope's; the input is closed whatever happens.
 */
export async function runOneImage(run: ScopedRun, job: OneImage): Promise<{ summary: OutputSummary; image: string | undefined; counters: RunCounters }> {
  const { input, output, reporter } = job;
  const attribution = new ErrorAttribution({ source: input.description, destination: output.description, destinationArea: destinationArea(job.destination), tempDir: job.settings.tempDir });
  attribution.setRunDir(run.scope.runDir);
  const progress = new RunProgress(reporter, { mode: !reporter.chatty ? 'silent' : reporter.isTty ? 'live' : 'lines' });
  let summary: OutputSummary;
  try {
    summary = await runPipeline({ input, filters: job.filters, output: attribution.output(output), effects: run.effects, signal: run.signal, parallelism: job.settings.parallel, progress });
  } catch (e) {
    throw attribution.explain(e);
  } finally {
    progress.stop();
    await input.close?.();
  }
  const net = input.stats?.();
  const push = output.stats?.();
  const counters: RunCounters = {
    downloaded: net?.downloaded ?? 0,
    uploaded: push?.uploaded ?? 0,
    retries: (net?.retries ?? 0) + (push?.retries ?? 0),
    rateLimited: (net?.rateLimited ?? 0) + (push?.rateLimited ?? 0),
    inflated: net?.inflated ?? 0,
  };
  return { summary, image: progress.imageName, counters };
}
