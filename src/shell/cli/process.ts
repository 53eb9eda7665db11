/**
 * `occystrap process SOURCE DESTINATION [-f FILTER]...`
 *
 * @module
 */
import { Command, Option } from 'clipanion';
import * as E from 'fp-ts/lib/Either.js';
import { usageError } from '../../core/errors.js';
import { parsePlatformList } from '../../core/plans/registry-index.js';
import type { PlatformWanted } from '../../core/platform.js';
import { copyPlatforms } from './platforms.js';
import type { ImageOutput } from '../../core/pipeline/types.js';
import { openInput, openOutput } from '../endpoints.js';
import { roleHelp } from '../transports/derive.js';
import { TRANSPORTS } from '../transports/index.js';
import { buildFilters } from '../filters.js';
import { formatSummary, meanRate, Reporter } from '../log.js';
import { GlobalCommand } from './options.js';
import { runOneImage } from './one-image.js';
import { runInScope } from './run-pipeline.js';

export class ProcessCommand extends GlobalCommand {
  static override paths = [['process']];
  static override usage = Command.Usage({
    description: 'Move one image from a source to a destination through filters',
    details: [
      'Reads the image at SOURCE (config first, then layers), passes it through each -f filter in order, and writes it to DESTINATION.',
      "Layers are handed over, not copied: a layer's temp file is renamed into a dir:// store.",
      'A failed or interrupted run leaves no partial output and no temp files.',
      '',
      roleHelp(TRANSPORTS, 'source'),
      '',
      roleHelp(TRANSPORTS, 'destination'),
      '',
      'Filters: normalize-timestamps[:ts=N], exclude:pattern=GLOB[,pattern=GLOB...], search:pattern=P[,regex=true][,script_friendly=true], inspect:file=PATH.',
      '',
      'Exit status: 0 done, 1 the run failed, 2 bad command line or missing input, 130/143 interrupted, 141 stdout or stderr closed by its reader.',
    ].join('\n'),
    examples: [
      ['Unpack a docker-save tarball into a directory store', '$0 process tar://image.tar dir://store'],
      ['Several images in one store, with 8 workers', '$0 -j 8 process tar://a.tar dir://store?unique_names=true'],
      ['Pick the second image of a multi-image archive', '$0 process "tar://all.tar?index=1" tar://one.tar'],
      ['Pull from a local plain-HTTP registry', '$0 --insecure process registry://127.0.0.1:5000/team/app:1.2 tar://app.tar'],
      ['Copy every platform of an image to another registry', '$0 process --all-platforms registry://src.example/app:1 registry://dst.example/app:1'],
      ['Reproducible layers without .git directories', '$0 process tar://in.tar tar://out.tar -f normalize-timestamps -f "exclude:pattern=**/.git/**"'],
    ],
  });

  source = Option.String({ name: 'SOURCE' });
  destination = Option.String({ name: 'DESTINATION' });
  filters = Option.Array('-f,--filter', [], { description: 'A filter NAME[:key=value,...]; repeatable, applied in order' });
  allPlatforms = Option.Boolean('--all-platforms', false, { description: 'registry:// to registry://: copy every platform of an index, and the index' });
  platforms = Option.String('--platforms', { description: 'registry:// to registry://: copy these platforms of an index (OS/ARCH[/VARIANT],...), and an index of them' });

  override async execute(): Promise<number> {
    const settings = this.settings();
    const reporter = new Reporter(settings.logLevel, this.context.stderr as NodeJS.WriteStream);
    if (this.allPlatforms || this.platforms !== undefined) {
      if (this.allPlatforms && this.platforms !== undefined) throw usageError('give --all-platforms or --platforms, not both');
      let which: 'all' | PlatformWanted[] = 'all';
      if (this.platforms !== undefined) {
        const parsed = parsePlatformList(this.platforms);
        if (E.isLeft(parsed)) throw usageError(`--platforms: ${parsed.left}`);
        which = parsed.right;
      }
      return copyPlatforms({ source: this.source, destination: this.destination, filters: this.filters, which, settings, reporter, stdout: this.context.stdout });
    }
    const input = await openInput(this.source, settings);
    const output: ImageOutput = await openOutput(this.destination, settings);
    const filters = buildFilters(this.filters);

    const started = performance.now();
    const { summary, image, counters } = await runInScope(settings, reporter, (run) => runOneImage(run, { input, output, destination: this.destination, filters, settings, reporter }));
    const seconds = (performance.now() - started) / 1000;
    const facts = {
      images: { done: 1, total: 1 },
      layers: summary.layers,
      layersSkipped: summary.layersSkipped,
      bytes: summary.bytes,
      downloaded: counters.downloaded,
      seconds,
      copiedAcrossDevices: summary.copiedAcrossDevices,
      retries: counters.retries,
      rateLimited: counters.rateLimited,
    };
    if (settings.outputFormat === 'json') {
      this.context.stdout.write(
        `${JSON.stringify({
          image: image ?? null,
          source: input.description,
          ...summary,
          written: summary.bytes,
          downloaded: counters.downloaded,
          uploaded: counters.uploaded,
          // Layers decompressed anywhere in the run: while downloading, or by an Inflate effect.
          inflated: (summary.inflated ?? 0) + counters.inflated,
          compressed: summary.compressed ?? 0,
          images: 1,
          seconds: Number(seconds.toFixed(3)),
          rate: Math.round(meanRate(facts)),
          retries: facts.retries,
          rateLimited: facts.rateLimited,
        })}\n`,
      );
    }
    if (reporter.chatty) reporter.line(formatSummary(facts));
    return 0;
  }
}
