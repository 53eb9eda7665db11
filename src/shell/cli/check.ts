/**
 * `occystrap check SOURCE [--fast]`: validate an image. Fast mode looks at the manifest
 * (when the source has one) and the config; full mode also reads every layer: its
 * diff_id is recomputed from the delivered file and its tar entries are scanned.
 *
 * A failure of the source while it is read (a corrupt layer the input refuses, a
 * truncated archive) is reported as an error result, not as a crash: the report is
 * printed and the exit status is 1.
 *
 * @module
 */
import { printableJson, printableLines } from '../../core/printable.js';
import { Command, Option } from 'clipanion';
import { CheckRun, checkReportJson, formatCheckText, type ManifestFacts } from '../../core/check.js';
import { hasCode } from '../../core/errors.js';
import { runPipeline } from '../../core/pipeline/compose.js';
import { checkOutput } from '../check-layers.js';
import { type OpenedSource, openSource } from '../endpoints.js';
import { Reporter } from '../log.js';
import { GlobalCommand } from './options.js';
import { roleHelp, sourcesByDescribe } from '../transports/derive.js';
import { TRANSPORTS } from '../transports/index.js';
import { runInScope } from './run-pipeline.js';

/** Manifest facts from sources that have a manifest to read on its own; undefined for the others. */
async function manifestFactsOf(source: OpenedSource, signal: AbortSignal): Promise<ManifestFacts | undefined> {
  return source.describe ? (await source.describe(signal)).manifest : undefined;
}

export class CheckCommand extends GlobalCommand {
  static override paths = [['check']];
  static override usage = Command.Usage({
    description: 'Validate an image: metadata, and with full mode every layer',
    details: [
      `Fast mode (--fast) checks the manifest (${sourcesByDescribe(TRANSPORTS).described.join(', ')} sources) and the config: schema version, rootfs type, layer and diff_id counts, history against layers, zstd layers, media types, very large layers, ArgsEscaped. Layers are not stored.`,
      '',
      'Full mode (the default) also reads every layer: its diff_id is recomputed from the delivered file, the config digest and size are checked against the manifest, and each tar is scanned for invalid whiteouts, negative timestamps, setuid/setgid files that are world-writable, and files repeated across layers.',
      '',
      "The text report lists errors, warnings and info, then \"Check complete (MODE): N error(s), M warning(s)\". -O json prints one JSON object with mode, errors, warnings and results.",
      '',
      'Exit status: 0 no errors, 1 errors found (or the source could not be read), 2 bad command line, 130/143 interrupted, 141 stdout or stderr closed by its reader.',
      '',
      roleHelp(TRANSPORTS, 'source'),
    ].join('\n'),
    examples: [
      ['Full check of a docker-save tarball', '$0 check tar://image.tar'],
      ['Metadata only, as JSON', '$0 -O json check --fast tar://image.tar'],
    ],
  });

  source = Option.String({ name: 'SOURCE' });
  fast = Option.Boolean('--fast', false, { description: 'Check metadata only; do not read layers' });

  override async execute(): Promise<number> {
    const settings = this.settings();
    const reporter = new Reporter(settings.logLevel, this.context.stderr as NodeJS.WriteStream);
    const source = await openSource(this.source, settings);
    const input = source.input;
    const mode = this.fast ? 'fast' : 'full';
    const run = new CheckRun(mode);

    await runInScope(settings, reporter, async ({ effects, signal }) => {
      try {
        const manifest = await manifestFactsOf(source, signal);
        if (manifest) run.setManifest(manifest);
        await runPipeline({ input, output: checkOutput(run, mode), effects, signal, parallelism: settings.parallel });
      } catch (e) {
        if (signal.aborted || hasCode(e, 'EABORT')) throw e;
        reporter.verbose(`the source failed: ${(e as Error)?.message ?? String(e)}`);
        run.addFailure(e);
      } finally {
        await input.close?.();
      }
    });

    const report = run.report();
    this.context.stdout.write(settings.outputFormat === 'json' ? `${printableJson(JSON.stringify(checkReportJson(report), null, 2))}\n` : printableLines(formatCheckText(report)));
    return report.errors > 0 ? 1 : 0;
  }
}
