/**
 * `dir://DIR`: a layer store shared by many images, as a destination and as a source
 * (one image of the store, chosen with `?image=` and `?tag=`; Python occystrap's
 * `recreate-image`).
 *
 * @module
 */
import * as path from 'node:path';
import { usageError } from '../../core/errors.js';
import { booleanOption } from '../../core/uri.js';
// Only a type here: the input module loads in open().
import type { DirStoreInput } from '../inputs/dir-store.js';
import { DirOutput } from '../outputs/dir.js';
import { checkOptions, filePath, orUsage, stringOption } from './target-options.js';
import type { DestinationRole, SourceRole, Transport } from './types.js';

const source: SourceRole<DirStoreInput> = {
  usage: 'dir://DIR[?image=NAME&tag=TAG]',
  summary: "one image of a layer store (this tool's or Python occystrap's), chosen by ?image= and ?tag= when it holds several",
  options: ['image', 'tag'],
  async open(target, settings) {
    checkOptions(target, source);
    if (target.body === '') throw usageError('dir:// source needs a path, e.g. dir://store');
    const image = stringOption(target, target.uri, 'image');
    const tag = stringOption(target, target.uri, 'tag');
    const { openDirStoreInput } = await import('../inputs/dir-store.js');
    return openDirStoreInput(target.uri, target.body, { ...(image !== undefined ? { image } : {}), ...(tag !== undefined ? { tag } : {}) }, settings.parallel);
  },
};

const destination: DestinationRole = {
  usage: 'dir://DIR[?unique_names=true&expand=true]',
  summary: 'a layer store shared by many images; ?expand=true adds the merged rootfs',
  options: ['unique_names', 'expand'],
  open(target, settings) {
    checkOptions(target, destination);
    const uniqueNames = orUsage(target.uri, booleanOption(target.options, 'unique_names', false));
    const expand = orUsage(target.uri, booleanOption(target.options, 'expand', false));
    return new DirOutput({ path: filePath(target, 'destination'), uniqueNames, expand, label: target.uri, concurrency: settings.parallel ?? 4 });
  },
  area: (target) => (target.body === '' ? undefined : path.resolve(target.body)),
};

export const dirTransport: Transport = { name: 'dir', what: 'a layer store', aliases: ['directory'], source, destination };
