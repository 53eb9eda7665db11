/**
 * `tar://FILE`: a docker-save tarball as a source, a docker-loadable archive as a
 * destination.
 *
 * @module
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { usageError } from '../../core/errors.js';
import type { ImageSelector } from '../../core/plans/docker-save.js';
import type { UriOptions } from '../../core/uri.js';
import { DockerSaveInput } from '../inputs/docker-save.js';
import { TarOutput } from '../outputs/tar.js';
import { checkOptions, filePath } from './target-options.js';
import type { DestinationRole, SourceRole, Transport } from './types.js';

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

const source: SourceRole<DockerSaveInput> = {
  usage: 'tar://FILE[?index=N|?tag=NAME:TAG]',
  summary: 'a docker-save tarball',
  options: ['index', 'tag'],
  async open(target) {
    checkOptions(target, source);
    const file = filePath(target, 'source');
    const selector = selectorFrom(target.uri, target.options);
    try {
      const st = await fs.stat(file);
      if (!st.isFile()) throw usageError(`${target.uri}: ${file} is not a file; give a docker-save tarball`);
    } catch (e) {
      if ((e as { code?: string }).code === 'ENOENT') throw usageError(`${target.uri}: ${file} does not exist; check the path`);
      throw e;
    }
    return new DockerSaveInput({ path: file, selector, label: target.uri });
  },
};

const destination: DestinationRole = {
  usage: 'tar://FILE',
  summary: 'a docker-loadable archive',
  options: [],
  open(target) {
    checkOptions(target, destination);
    return new TarOutput({ path: filePath(target, 'destination'), label: target.uri });
  },
  area: (target) => (target.body === '' ? undefined : path.dirname(path.resolve(target.body))),
};

export const tarTransport: Transport = { name: 'tar', what: 'a docker-save archive', aliases: ['file'], source, destination };
