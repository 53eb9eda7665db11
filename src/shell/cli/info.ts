/**
 * `occystrap info SOURCE`: the image's manifest and config facts, without downloading
 * or storing a layer.
 *
 * @module
 */
import { Command, Option } from 'clipanion';
import { type ConfigElement, Forms, releaseElement } from '../../core/element.js';
import { inputError } from '../../core/errors.js';
import { formatImageInfo, imageInfo, type ImageInfo } from '../../core/image-info.js';
import { printableJson } from '../../core/printable.js';
import { openSource } from '../endpoints.js';
import { formatBytes, Reporter } from '../log.js';
import { GlobalCommand } from './options.js';
import { roleHelp, sourcesByDescribe } from '../transports/derive.js';
import { TRANSPORTS } from '../transports/index.js';
import { runDirError } from './run-pipeline.js';
import { withSignals } from './signals.js';
import { TempScope } from '../scope.js';

const BY_DESCRIBE = sourcesByDescribe(TRANSPORTS);

export class InfoCommand extends GlobalCommand {
  static override paths = [['info']];
  static override usage = Command.Usage({
    description: "Show an image's metadata without downloading its layers",
    details: [
      `For ${BY_DESCRIBE.described.join(', ')} sources: the manifest (choosing a platform from an index) and the config.`,
      `For ${BY_DESCRIBE.readThrough.join(', ')} sources: the source is read until its config and manifest are known; layers are read past, not stored.`,
      'Text by default (the sections of occystrap\'s info); -O json prints one JSON object with occystrap\'s field names.',
      '',
      roleHelp(TRANSPORTS, 'source'),
    ].join('\n'),
    examples: [
      ['A registry image', '$0 info registry://127.0.0.1:5000/team/app:1.2 --insecure'],
      ['As JSON', '$0 -O json info tar://image.tar'],
    ],
  });

  source = Option.String({ name: 'SOURCE' });

  override async execute(): Promise<number> {
    const settings = this.settings();
    const reporter = new Reporter(settings.logLevel, this.context.stderr as NodeJS.WriteStream);
    const { input, describe } = await openSource(this.source, settings);
    let info: ImageInfo;
    try {
      if (describe) {
        const { config, manifest } = await describe();
        info = imageInfo(config, manifest);
      } else {
        info = await withSignals(
          () => TempScope.open({ parent: settings.tempDir }).catch((e: unknown) => Promise.reject(runDirError(settings.tempDir, e))),
          reporter,
          async (signal, scope) => imageInfo(await firstConfig(input.elements({ effects: scope, signal, owner: 'input', wants: async () => Forms.none, parallelism: 1 }), scope)),
        );
      }
    } finally {
      await input.close?.();
    }
    this.context.stdout.write(settings.outputFormat === 'json' ? `${printableJson(JSON.stringify(info, null, 2))}\n` : formatImageInfo(info, formatBytes));
    return 0;
  }
}

async function firstConfig(elements: AsyncIterable<import('../../core/element.js').ImageElement>, scope: TempScope): Promise<ConfigElement> {
  const release = releaseElement(scope, 'input');
  let config: ConfigElement | undefined;
  // Read to the end: a truncated or ambiguous archive is refused here as by `process`.
  for await (const element of elements) {
    if (element._tag === 'Config') config ??= element;
    else await release(element);
  }
  if (!config) throw inputError('the source produced no config');
  return config;
}
