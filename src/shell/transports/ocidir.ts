/**
 * `ocidir://DIR[:TAG|@DIGEST]`: an OCI image layout (image-spec v1.1), as a source and as
 * a destination; regctl's name for it (`oci://` stays occystrap's runtime bundle). Layers
 * pass through as the source's blobs where no filter changed them.
 *
 * @module
 */
import * as path from 'node:path';
import { parseOciLayoutReference } from '../../core/plans/oci-layout.js';
// Only a type here: the input module loads in open().
import type { OciLayoutInput } from '../inputs/oci-layout.js';
import { checkOptions, orUsage } from './target-options.js';
import { type DestinationRole, describedImage, type SourceRole, type Target, type Transport } from './types.js';

function reference(target: Target) {
  return orUsage(target.uri, parseOciLayoutReference(target.body));
}

const source: SourceRole<OciLayoutInput> = {
  usage: 'ocidir://DIR[:TAG|@DIGEST]',
  summary: 'an OCI image layout (skopeo oci:, umoci, buildah)',
  options: ['os', 'arch', 'architecture', 'variant'],
  async open(target, settings) {
    checkOptions(target, source);
    const { openOciLayoutInput } = await import('../inputs/oci-layout.js');
    return openOciLayoutInput(target, reference(target), settings);
  },
  async describe(input, signal) {
    const { resolved, config } = await input.describe(signal);
    return describedImage(config, resolved.manifest, resolved.digest, resolved.mediaType);
  },
};

const destination: DestinationRole = {
  usage: 'ocidir://DIR[:TAG]',
  summary: 'an OCI image layout; blobs pass through, others are compressed (--compression)',
  options: [],
  async open(target, settings) {
    checkOptions(target, destination);
    const { openOciLayoutOutput } = await import('../outputs/oci-layout.js');
    return openOciLayoutOutput(target, reference(target), settings);
  },
  area: (target) => {
    const parsed = parseOciLayoutReference(target.body);
    return parsed._tag === 'Right' ? path.resolve(parsed.right.path) : undefined;
  },
};

export const ocidirTransport: Transport = { name: 'ocidir', what: 'an OCI image layout', aliases: [], source, destination };
