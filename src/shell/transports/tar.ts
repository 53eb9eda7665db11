/**
 * `tar://FILE`: a docker-save tarball as a source, a docker-loadable archive as a
 * destination.
 *
 * @module
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { usageError } from '../../core/errors.js';
import { type ImageSelector, parseRepoTag } from '../../core/plans/docker-save.js';
import { checkImageReference } from '../../core/reference.js';
import type { UriOptions } from '../../core/uri.js';
import { DockerSaveInput } from '../inputs/docker-save.js';
import { TarOutput } from '../outputs/tar.js';
import { checkOptions, filePath, orUsage, stringOption } from './target-options.js';
import type { DestinationRole, SourceRole, Target, Transport } from './types.js';

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

/**
 * `?name=NAME[:TAG]`: the RepoTag the archive gets (docker load tags the image with it);
 * a name without a tag gets `latest`, as docker would give it.
 */
function repoTagOption(target: Target): string | undefined {
  const name = stringOption(target, target.uri, 'name');
  if (name === undefined) return undefined;
  if (name.includes('@')) throw usageError(`${target.uri}: ?name= takes NAME[:TAG]; a RepoTag cannot name a digest`);
  const { name: repository, tag } = parseRepoTag(name);
  const full = `${repository}:${tag}`;
  orUsage(`${target.uri}: ?name=`, checkImageReference(full));
  return full;
}

const destination: DestinationRole = {
  usage: 'tar://FILE[?name=NAME:TAG]',
  summary: 'a docker-loadable archive',
  options: ['name'],
  open(target) {
    checkOptions(target, destination);
    const repoTag = repoTagOption(target);
    return new TarOutput({ path: filePath(target, 'destination'), label: target.uri, ...(repoTag !== undefined ? { repoTag } : {}) });
  },
  area: (target) => (target.body === '' ? undefined : path.dirname(path.resolve(target.body))),
};

export const tarTransport: Transport = { name: 'tar', what: 'a docker-save archive', aliases: ['file'], source, destination };
