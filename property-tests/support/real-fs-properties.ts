/**
 * A property on the real file system (node:fs through TempScope's default port): random
 * create / hand-over / move / release sequences in a fresh directory under os.tmpdir(),
 * then close.
 *
 * @module
 */
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as fc from 'fast-check';
import { OwnershipError, type TempFile } from '../../src/core/ownership.js';
import { TempScope } from '../../src/shell/scope.js';
import { OWNERS, type Owner } from './ownership-properties.js';
import type { ScopeUnderTest } from './scopes.js';

/** Opens a handler on the real fs with its run dir under `parent`. */
export type NodeScopeFactory = (parent: string) => Promise<ScopeUnderTest>;

/** The real one: TempScope.open without an `fs` option, i.e. the node port. */
export const nodeScope: NodeScopeFactory = (parent) => TempScope.open({ parent });

type Action =
  | { readonly kind: 'create'; readonly owner: Owner; readonly beside: boolean }
  | { readonly kind: 'handOver'; readonly n: number; readonly to: Owner }
  | { readonly kind: 'move'; readonly n: number }
  | { readonly kind: 'release'; readonly n: number }
  | { readonly kind: 'wrongRelease'; readonly n: number }
  | { readonly kind: 'close' };

const ownerArb = fc.constantFrom(...OWNERS);
export const realFsActionsArb: fc.Arbitrary<Action[]> = fc.array(
  fc.oneof(
    { arbitrary: fc.record({ kind: fc.constant('create' as const), owner: ownerArb, beside: fc.boolean() }), weight: 4 },
    { arbitrary: fc.record({ kind: fc.constant('handOver' as const), n: fc.nat(), to: ownerArb }), weight: 2 },
    { arbitrary: fc.record({ kind: fc.constant('move' as const), n: fc.nat() }), weight: 2 },
    { arbitrary: fc.record({ kind: fc.constant('release' as const), n: fc.nat() }), weight: 2 },
    { arbitrary: fc.record({ kind: fc.constant('wrongRelease' as const), n: fc.nat() }), weight: 1 },
    { arbitrary: fc.constant({ kind: 'close' as const }), weight: 1 },
  ),
  { maxLength: 20 },
);

async function exists(p: string): Promise<boolean> {
  return fsp.stat(p).then(
    () => true,
    () => false,
  );
}

export function realFsProperty(factory: NodeScopeFactory) {
  return fc.asyncProperty(realFsActionsArb, async (actions) => {
    const base = await fsp.mkdtemp(path.join(os.tmpdir(), 'occystrap-prop-'));
    try {
      const parent = path.join(base, 'tmp');
      const dest = path.join(base, 'dest');
      await fsp.mkdir(dest);
      const scope = await factory(parent);
      const live: Array<{ file: TempFile; owner: Owner; i: number; target: string }> = [];
      const moved = new Map<string, string>(); // name in dest → content
      let created = 0;
      const problems: string[] = [];
      for (const a of actions) {
        if (a.kind === 'close') break;
        if (a.kind === 'create') {
          const i = created++;
          const target = path.join(dest, a.beside ? `final-${i}.tar` : `m${i}`);
          const file = await scope.perform({ _tag: 'CreateTemp', owner: a.owner, purpose: `t${i}`, ...(a.beside ? { location: { _tag: 'Beside', target } as const } : {}) });
          if (path.dirname(file.path) !== (a.beside ? dest : scope.runDir)) problems.push(`${file.path} is in the wrong directory`);
          await fsp.writeFile(file.path, `content-${i}`);
          live.push({ file, owner: a.owner, i, target });
          continue;
        }
        if (live.length === 0) continue;
        const k = a.n % live.length;
        const entry = live[k] as (typeof live)[number];
        if (a.kind === 'handOver') {
          await scope.perform({ _tag: 'HandOver', file: entry.file, from: entry.owner, to: a.to });
          entry.owner = a.to;
        } else if (a.kind === 'move') {
          await scope.perform({ _tag: 'MoveIntoPlace', file: entry.file, owner: entry.owner, destination: entry.target });
          live.splice(k, 1);
          moved.set(path.basename(entry.target), `content-${entry.i}`);
          if (await exists(entry.file.path)) problems.push(`moved, but ${entry.file.path} still exists`);
        } else if (a.kind === 'release') {
          await scope.perform({ _tag: 'Release', file: entry.file, owner: entry.owner });
          live.splice(k, 1);
          if (await exists(entry.file.path)) problems.push(`released, but ${entry.file.path} still exists`);
        } else {
          const wrong = OWNERS[(OWNERS.indexOf(entry.owner) + 1) % OWNERS.length] as Owner;
          const r = await scope.perform({ _tag: 'Release', file: entry.file, owner: wrong }).then(
            () => 'accepted',
            (e: unknown) => (e instanceof OwnershipError ? 'rejected' : String(e)),
          );
          if (r !== 'rejected') problems.push(`a release by the wrong owner was ${r}`);
          if (!(await exists(entry.file.path))) problems.push(`a rejected release removed ${entry.file.path}`);
        }
      }
      const report = await scope.close();
      if (report.released !== live.length) problems.push(`close released ${report.released}, ${live.length} were live`);
      if (report.problems.length > 0) problems.push(`close problems: ${report.problems.join('; ')}`);
      if (await exists(scope.runDir)) problems.push(`run dir ${scope.runDir} still exists: ${(await fsp.readdir(scope.runDir)).join(', ')}`);
      const names = (await fsp.readdir(dest)).sort();
      const expected = [...moved.keys()].sort();
      if (JSON.stringify(names) !== JSON.stringify(expected)) problems.push(`destination holds ${JSON.stringify(names)}, expected ${JSON.stringify(expected)}`);
      for (const [name, content] of moved) {
        const got = await fsp.readFile(path.join(dest, name), 'utf8').catch(() => '<missing>');
        if (got !== content) problems.push(`${name} holds ${JSON.stringify(got)}, expected ${JSON.stringify(content)}`);
      }
      if (problems.length > 0) throw new Error(`real fs: ${problems.join('\n')}`);
    } finally {
      await fsp.rm(base, { recursive: true, force: true });
    }
  });
}
