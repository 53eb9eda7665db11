/**
 * From URIs to inputs and outputs.
 *
 * @module
 */
import * as E from 'fp-ts/lib/Either.js';
import { promises as fs } from 'node:fs';
import { usageError } from '../core/errors.js';
import type { ImageInput, ImageOutput } from '../core/pipeline/types.js';
import type { ImageSelector } from '../core/plans/docker-save.js';
import { booleanOption, checkKnownOptions, parseUri, type UriOptions } from '../core/uri.js';
import { DockerSaveInput } from './inputs/docker-save.js';
import { DirOutput } from './outputs/dir.js';
import { TarOutput } from './outputs/tar.js';

const INPUT_SCHEMES = ['tar'];
const OUTPUT_SCHEMES = ['tar', 'dir'];
const PLANNED_OUTPUTS: Record<string, string> = {
  registry: 'registry:// as a destination is not available in this version yet (it is planned); write tar://FILE and push it with "skopeo copy docker-archive:FILE docker://…"',
  docker: 'docker:// as a destination is not available in this version yet (it is planned); write tar://FILE and "docker load -i FILE"',
};
const PLANNED: Record<string, string> = {
  registry: 'registry:// is not available in this version yet (it is planned); save the image with "skopeo copy docker://… docker-archive:FILE" and use tar://FILE',
  docker: 'docker:// is not available in this version yet (it is planned); use "docker save -o FILE IMAGE" and tar://FILE',
  quay: 'quay:// is not available in this version yet (it is planned)',
  dockerpush: 'dockerpush:// is not available in this version yet (it is planned)',
  oci: 'oci:// output is not available in this version yet (it is planned); use dir://',
  mounts: 'mounts:// output is not available in this version yet (it is planned); use dir://',
};

function orUsage<A>(label: string, r: E.Either<string, A>): A {
  if (E.isLeft(r)) throw usageError(`${label}: ${r.left}`);
  return r.right;
}

function filePath(scheme: string, body: string, role: string): string {
  if (body === '') throw usageError(`${scheme}:// ${role} needs a path, e.g. ${scheme}://image.tar`);
  return body;
}

function selectorFrom(uri: string, options: UriOptions): ImageSelector {
  const index = options['index'];
  const tag = options['tag'];
  if (index !== undefined && tag !== undefined) throw usageError(`${uri}: give ?index= or ?tag=, not both`);
  if (index !== undefined) {
    if (typeof index !== 'number' || index < 0) throw usageError(`${uri}: ?index= takes a number from 0, got ${JSON.stringify(index)}`);
    return { _tag: 'Index', index };
  }
  if (tag !== undefined) {
    if (typeof tag !== 'string' && typeof tag !== 'number') throw usageError(`${uri}: ?tag= takes NAME:TAG, got ${JSON.stringify(tag)}`);
    return { _tag: 'Tag', tag: String(tag) };
  }
  return { _tag: 'First' };
}

/** Build the input for a source URI; checks that a local file exists (exit 2 when not). */
export async function openInput(uri: string): Promise<ImageInput> {
  const parsed = orUsage('source', parseUri(uri));
  switch (parsed.scheme) {
    case 'tar': {
      orUsage(uri, checkKnownOptions('tar', parsed.options, ['index', 'tag']));
      const path = filePath('tar', parsed.body, 'source');
      const selector = selectorFrom(uri, parsed.options);
      try {
        const st = await fs.stat(path);
        if (!st.isFile()) throw usageError(`${uri}: ${path} is not a file; give a docker-save tarball`);
      } catch (e) {
        if ((e as { code?: string }).code === 'ENOENT') throw usageError(`${uri}: ${path} does not exist; check the path`);
        throw e;
      }
      return new DockerSaveInput({ path, selector, label: uri });
    }
    default:
      throw usageError(PLANNED[parsed.scheme] ?? `unknown source scheme "${parsed.scheme}://" in ${uri}; sources: ${INPUT_SCHEMES.map((s) => `${s}://`).join(', ')}`);
  }
}

export function openOutput(uri: string): ImageOutput {
  const parsed = orUsage('destination', parseUri(uri));
  switch (parsed.scheme) {
    case 'tar': {
      orUsage(uri, checkKnownOptions('tar', parsed.options, []));
      return new TarOutput({ path: filePath('tar', parsed.body, 'destination'), label: uri });
    }
    case 'dir': {
      orUsage(uri, checkKnownOptions('dir', parsed.options, ['unique_names', 'expand']));
      const uniqueNames = orUsage(uri, booleanOption(parsed.options, 'unique_names', false));
      const expand = orUsage(uri, booleanOption(parsed.options, 'expand', false));
      if (expand) throw usageError(`${uri}: ?expand=true (a merged rootfs) is not available in this version yet; omit it`);
      return new DirOutput({ path: filePath('dir', parsed.body, 'destination'), uniqueNames, label: uri });
    }
    default:
      throw usageError(PLANNED_OUTPUTS[parsed.scheme] ?? PLANNED[parsed.scheme] ?? `unknown destination scheme "${parsed.scheme}://" in ${uri}; destinations: ${OUTPUT_SCHEMES.map((s) => `${s}://`).join(', ')}`);
  }
}
