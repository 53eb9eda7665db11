/**
 * `process --all-platforms` / `--platforms LIST`: copy a multi-platform index from one
 * registry to another. Each chosen platform's image goes through the pipeline (filters
 * included) and is pushed by its digest, untagged; the index naming them is pushed last,
 * under the destination's tag, so a failure never leaves a tag naming missing images.
 *
 * @module
 */
import * as E from 'fp-ts/lib/Either.js';
import { usageError } from '../../core/errors.js';
import type { OutputSummary } from '../../core/pipeline/types.js';
import { type CopiedEntry, choosePlatforms, indexToPush } from '../../core/plans/registry-index.js';
import { describePlatform, type PlatformWanted } from '../../core/platform.js';
import { parseRegistryReference, parseUri } from '../../core/uri.js';
import { openInput, openOutput } from '../endpoints.js';
import { buildFilters } from '../filters.js';
import { formatSummary, meanRate, type Reporter } from '../log.js';
import { runOneImage } from './one-image.js';
import type { GlobalSettings } from './options.js';
import { runInScope } from './run-pipeline.js';

export interface PlatformCopy {
  readonly source: string;
  readonly destination: string;
  readonly filters: readonly string[];
  readonly which: 'all' | readonly PlatformWanted[];
  readonly settings: GlobalSettings;
  readonly reporter: Reporter;
  readonly stdout: { write(text: string): unknown };
}

/** A registry input that can say which index its reference names (RegistryInput). */
interface IndexSource {
  index(signal?: AbortSignal): Promise<{ mediaType: string; raw: Uint8Array; digest: string; document: import('../../core/codecs/oci.js').ImageIndex } | undefined>;
  close?(): Promise<void>;
}

/** Pushes an index under the destination's tag (RegistryOutput). */
interface DocumentDestination {
  putDocument(reference: string, mediaType: string, bytes: Uint8Array, signal?: AbortSignal): Promise<string>;
  readonly pushedManifest?: { readonly digest: string; readonly size: number; readonly mediaType: string } | undefined;
}

/**
 * For a registry:// URI (parsed as the transport table parses it), the tag it writes out:
 * undefined for none (no tag, or `@DIGEST`). Not a registry:// URI: no answer at all.
 */
function registryTag(uri: string): { readonly tag: string | undefined } | undefined {
  const parsed = parseUri(uri, {});
  if (E.isLeft(parsed) || parsed.right.scheme !== 'registry') return undefined;
  const ref = parseRegistryReference(parsed.right.body);
  if (E.isLeft(ref)) throw usageError(`${uri}: ${ref.left}`);
  const body = parsed.right.body;
  const written = ref.right.digest === undefined && body.slice(body.lastIndexOf('/') + 1).includes(':');
  return { tag: written ? ref.right.tag : undefined };
}

export async function copyPlatforms(job: PlatformCopy): Promise<number> {
  const { settings, reporter } = job;
  const destination = registryTag(job.destination);
  if (registryTag(job.source) === undefined || destination === undefined) {
    throw usageError('--all-platforms and --platforms copy an index from a registry:// source to a registry:// destination; for other destinations pick one platform with --os/--architecture/--variant');
  }
  const tag = destination.tag;
  if (tag === undefined) throw usageError(`${job.destination}: a multi-platform copy needs a destination tag (registry://HOST/NAME:TAG); the index is pushed under it`);
  buildFilters(job.filters); // refuse a bad -f before anything is fetched
  const started = performance.now();
  const probe = (await openInput(job.source, settings)) as unknown as IndexSource;
  let index: Awaited<ReturnType<IndexSource['index']>>;
  try {
    index = await probe.index();
  } finally {
    await probe.close?.();
  }
  if (!index) throw usageError(`${job.source} names a single image, not a multi-platform index; copy it without --all-platforms/--platforms`);
  const chosen = choosePlatforms(index.document, job.which);
  if (E.isLeft(chosen)) throw usageError(`${job.source}: ${chosen.left}`);

  const copied: CopiedEntry[] = [];
  const summaries: OutputSummary[] = [];
  let downloaded = 0;
  let retries = 0;
  let rateLimited = 0;
  let uploaded = 0;
  await runInScope(settings, reporter, async (run) => {
    for (const [n, entry] of chosen.right.entries()) {
      const platform = entry.platform as NonNullable<typeof entry.platform>;
      const wanted: PlatformWanted = { os: platform.os, architecture: platform.architecture, variant: platform.variant ?? '' };
      if (reporter.chatty) reporter.line(`[${n + 1}/${chosen.right.length}] ${describePlatform(wanted)} (${entry.digest})`);
      const input = await openInput(job.source, { ...settings, platform: wanted });
      const output = await openOutput(job.destination, { ...settings, pushUntagged: true });
      const { summary, counters } = await runOneImage(run, { input, output, destination: job.destination, filters: buildFilters(job.filters), settings, reporter });
      summaries.push(summary);
      const pushed = (output as unknown as DocumentDestination).pushedManifest;
      if (!pushed) throw new Error(`${output.description}: the push of ${describePlatform(wanted)} reported no manifest`);
      copied.push({ source: entry, pushed });
      downloaded += counters.downloaded;
      retries += counters.retries;
      rateLimited += counters.rateLimited;
      uploaded += counters.uploaded;
    }
    const { mediaType, bytes } = indexToPush(index, copied);
    const last = (await openOutput(job.destination, settings)) as unknown as DocumentDestination;
    const digest = await last.putDocument(tag, mediaType, bytes, run.signal);
    if (reporter.chatty) reporter.line(`index ${digest} with ${copied.length} platform(s) put as ${job.destination}`);
    return digest;
  });
  const seconds = (performance.now() - started) / 1000;
  const total = (f: (s: OutputSummary) => number) => summaries.reduce((n, s) => n + f(s), 0);
  const facts = {
    images: { done: summaries.length, total: chosen.right.length },
    layers: total((s) => s.layers),
    layersSkipped: total((s) => s.layersSkipped),
    bytes: total((s) => s.bytes),
    downloaded,
    seconds,
    copiedAcrossDevices: 0,
    retries,
    rateLimited,
  };
  if (settings.outputFormat === 'json') {
    job.stdout.write(
      `${JSON.stringify({
        source: job.source,
        destination: job.destination,
        images: summaries.length,
        platforms: copied.map((c) => ({ platform: describePlatform({ os: c.source.platform?.os ?? '', architecture: c.source.platform?.architecture ?? '', variant: c.source.platform?.variant }), source: c.source.digest, pushed: c.pushed.digest })),
        layers: facts.layers,
        layersSkipped: facts.layersSkipped,
        written: facts.bytes,
        bytes: facts.bytes,
        downloaded,
        uploaded,
        seconds: Number(seconds.toFixed(3)),
        rate: Math.round(meanRate(facts)),
        retries,
        rateLimited,
      })}\n`,
    );
  }
  if (reporter.chatty) reporter.line(formatSummary(facts));
  return 0;
}
