/**
 * io-ts codec for a docker-save archive's `manifest.json` and `repositories`.
 *
 * @module
 */
import * as t from 'io-ts';
import * as E from 'fp-ts/lib/Either.js';
import { type DecodeError, decodeWith, parseJsonBytes } from './common.js';

export const DockerSaveEntry = t.intersection(
  [
    t.type({ Config: t.string, Layers: t.array(t.string) }),
    t.partial({ RepoTags: t.union([t.array(t.string), t.null]), Parent: t.string, LayerSources: t.UnknownRecord }),
  ],
  'DockerSaveEntry',
);
export type DockerSaveEntry = t.TypeOf<typeof DockerSaveEntry>;

export const DockerSaveManifest = t.array(DockerSaveEntry, 'DockerSaveManifest');
export type DockerSaveManifest = t.TypeOf<typeof DockerSaveManifest>;

export const Repositories = t.record(t.string, t.record(t.string, t.string), 'Repositories');
export type Repositories = t.TypeOf<typeof Repositories>;

export function decodeDockerSaveManifest(bytes: Uint8Array): E.Either<DecodeError, DockerSaveManifest> {
  const json = parseJsonBytes('manifest.json', bytes);
  if (E.isLeft(json)) return json;
  const r = decodeWith(DockerSaveManifest, 'manifest.json', json.right);
  if (E.isRight(r) && r.right.length === 0) {
    return E.left({ _tag: 'DecodeError', document: 'manifest.json', path: '(root)', message: 'lists no images' });
  }
  return r;
}
