/**
 * `oci://DIR`: an OCI runtime bundle (`config.json`, `rootfs/`, `container-config.json`),
 * as Python occystrap writes it; runc runs it. A destination only.
 *
 * @module
 */
import * as path from 'node:path';
import { OciBundleOutput } from '../outputs/oci-bundle.js';
import { checkOptions } from './target-options.js';
import type { DestinationRole, Transport } from './types.js';
import { usageError } from '../../core/errors.js';

const destination: DestinationRole = {
  usage: 'oci://DIR',
  summary: 'an OCI runtime bundle for runc: rootfs/, config.json from the image config, container-config.json',
  options: [],
  open(target, settings) {
    checkOptions(target, destination);
    if (target.body === '') throw usageError('oci:// destination needs a directory, e.g. oci://bundle');
    const quiet = settings.logLevel === 'quiet';
    return new OciBundleOutput({ path: target.body, label: target.uri, warn: (m) => void (quiet || process.stderr.write(`occystrap: warning: ${m}\n`)) });
  },
  area: (target) => (target.body === '' ? undefined : path.dirname(path.resolve(target.body))),
};

export const ociTransport: Transport = { name: 'oci', what: 'an OCI runtime bundle', aliases: [], destination };
