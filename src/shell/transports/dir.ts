/**
 * `dir://DIR`: a layer store shared by many images (destination only).
 *
 * @module
 */
import * as path from 'node:path';
import { usageError } from '../../core/errors.js';
import { booleanOption } from '../../core/uri.js';
import { DirOutput } from '../outputs/dir.js';
import { checkOptions, filePath, orUsage } from './target-options.js';
import type { DestinationRole, Transport } from './types.js';

const destination: DestinationRole = {
  usage: 'dir://DIR[?unique_names=true]',
  summary: 'a layer store shared by many images (?expand=true, a merged rootfs, is planned)',
  options: ['unique_names', 'expand'],
  open(target, settings) {
    checkOptions(target, destination);
    const uniqueNames = orUsage(target.uri, booleanOption(target.options, 'unique_names', false));
    const expand = orUsage(target.uri, booleanOption(target.options, 'expand', false));
    if (expand) throw usageError(`${target.uri}: ?expand=true (a merged rootfs) is not available in this version yet; omit it`);
    return new DirOutput({ path: filePath(target, 'destination'), uniqueNames, label: target.uri, concurrency: settings.parallel ?? 4 });
  },
  area: (target) => (target.body === '' ? undefined : path.resolve(target.body)),
};

export const dirTransport: Transport = { name: 'dir', what: 'a layer store', aliases: ['directory'], destination };
