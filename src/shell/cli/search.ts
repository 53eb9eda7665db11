/**
 * `occystrap search SOURCE PATTERN [--regex] [--script-friendly]`: list the paths in the
 * image's layers that match PATTERN. Nothing is stored: every layer is read by the search
 * filter and then released.
 *
 * @module
 */
import * as E from 'fp-ts/lib/Either.js';
import { Command, Option } from 'clipanion';
import { usageError } from '../../core/errors.js';
import { formatSearchReport, searchMatcher, SearchFilter, type SearchReport, searchReportJson } from '../../core/filters/search.js';
import { runPipeline } from '../../core/pipeline/compose.js';
import { payloadBytes, releaseElement } from '../../core/element.js';
import { copyInto } from '../../core/pipeline/copy-image.js';
import type { ImageOutput } from '../../core/pipeline/types.js';
import { readLayerFile } from '../check-layers.js';
import { printableJson, printableLines } from '../../core/printable.js';
import { openInput } from '../endpoints.js';
import { Reporter } from '../log.js';
import { ErrorAttribution } from './attribution.js';
import { GlobalCommand } from './options.js';
import { roleHelp } from '../transports/derive.js';
import { TRANSPORTS } from '../transports/index.js';
import { runInScope } from './run-pipeline.js';

/** The end of a search-only pipeline: counts what arrives and releases every layer file. */
export function discardOutput(): ImageOutput {
  return copyInto<null>({
    description: 'search',
    order: 'completion',
    needs: { _tag: 'Tar' },
    begin: async () => undefined,
    putConfig: async () => undefined,
    async putLayer(layer, payload, ctx) {
      await releaseElement(ctx.effects, ctx.owner)({ _tag: 'Layer', layer, payload });
      return { stored: null, bytes: payloadBytes(payload) };
    },
    commit: async () => ({ destination: 'search' }),
    abort: async () => undefined,
  });
}

export class SearchCommand extends GlobalCommand {
  static override paths = [['search']];
  static override usage = Command.Usage({
    description: "List the files in an image's layers whose path matches a pattern",
    details: [
      'Reads every layer of the image at SOURCE and prints the entries whose path matches PATTERN. Nothing is written but the report (on stdout).',
      '',
      'PATTERN is a shell glob (fnmatch: * also crosses /) matched against the full path and against the file name, so "*bash" finds bin/bash. With --regex it is a regular expression in RE2 syntax (linear-time matching: no lookahead, lookbehind or backreferences), found anywhere in the path.',
      '',
      'The report lists, per layer (named as occystrap names it: the blob digest hex for registry:// and ocidir://, the layer id or blob hex of a docker-save archive), each match with its type; then "Found N match(es) in M layer(s)." or "No matches found.". With --script-friendly: one line per match, IMAGE:TAG:LAYER:PATH, and nothing when nothing matches. -O json prints one JSON object.',
      '',
      roleHelp(TRANSPORTS, 'source'),
    ].join('\n'),
    examples: [
      ['Shells in an image', '$0 search tar://image.tar "bin/*sh"'],
      ['Python files, by regex, for a script', '$0 search --regex --script-friendly tar://image.tar "\\\\.py$"'],
    ],
  });

  source = Option.String({ name: 'SOURCE' });
  pattern = Option.String({ name: 'PATTERN' });
  regex = Option.Boolean('--regex', false, { description: 'PATTERN is a regular expression, searched anywhere in the path' });
  scriptFriendly = Option.Boolean('--script-friendly', false, { description: 'Print IMAGE:TAG:LAYER:PATH per match, nothing else' });

  override async execute(): Promise<number> {
    const settings = this.settings();
    const reporter = new Reporter(settings.logLevel, this.context.stderr as NodeJS.WriteStream);
    if (this.pattern === '') throw usageError('search needs a non-empty PATTERN');
    const matcher = searchMatcher({ pattern: this.pattern, regex: this.regex });
    if (E.isLeft(matcher)) throw usageError(matcher.left);
    const input = await openInput(this.source, settings);

    let report: SearchReport | undefined;
    const filter = new SearchFilter({
      pattern: this.pattern,
      regex: this.regex,
      read: readLayerFile,
      report: (r) => {
        report = r;
      },
      warn: (message) => reporter.line(`occystrap: warning: ${message}`),
    });
    const attribution = new ErrorAttribution({ source: input.description, tempDir: settings.tempDir });
    await runInScope(settings, reporter, async ({ effects, signal, scope }) => {
      attribution.setRunDir(scope.runDir);
      try {
        return await runPipeline({ input, filters: [filter], output: discardOutput(), effects, signal, parallelism: settings.parallel });
      } catch (e) {
        throw attribution.explain(e);
      } finally {
        await input.close?.();
      }
    });
    if (!report) return 1; // unreachable: the filter reports whenever the stream ended
    this.context.stdout.write(settings.outputFormat === 'json' ? `${printableJson(JSON.stringify(searchReportJson(report), null, 2))}\n` : printableLines(formatSearchReport(report, this.scriptFriendly)));
    return 0;
  }
}
