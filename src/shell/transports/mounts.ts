/**
 * `mounts://DIR`: each layer extracted alone with overlayfs whiteouts, and the overlay
 * mounted at `DIR/rootfs` (root only), as Python occystrap does. A destination only.
 *
 * @module
 */
import * as path from 'node:path';
import { usageError } from '../../core/errors.js';
import { MountsOutput } from '../outputs/mounts.js';
import { checkOptions } from './target-options.js';
import type { DestinationRole, Transport } from './types.js';

const destination: DestinationRole = {
  usage: 'mounts://DIR',
  summary: 'each layer extracted alone, and the overlay mounted at DIR/rootfs (root only)',
  options: [],
  open(target) {
    checkOptions(target, destination);
    if (target.body === '') throw usageError('mounts:// destination needs a directory, e.g. mounts://image');
    return new MountsOutput({ path: target.body, label: target.uri });
  },
  area: (target) => (target.body === '' ? undefined : path.dirname(path.resolve(target.body))),
};

export const mountsTransport: Transport = { name: 'mounts', what: 'overlay mounts', aliases: [], destination };
