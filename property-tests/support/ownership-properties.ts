/**
 * Property bodies over the effect handler alone (TempScope + Ledger over a memory fs):
 *
 * - {@link ownershipModelProperty}: `fc.commands` + `fc.asyncModelRun`; the model is a
 *   `Map<index, owner | 'moved' | 'released'>` plus the queue of injected faults, and each
 *   command predicts exactly what the handler and the file system must do.
 * - {@link interleavedOwnershipProperty}: many ownership operations and a `close()` in
 *   flight at once, their file-system steps ordered by `fc.scheduler()`.
 *
 * Both take a {@link ScopeFactory} so test-of-tests can run them against broken handlers.
 *
 * @module
 */
import * as fc from 'fast-check';
import { OwnershipError, type TempFile, type TempLocation } from '../../src/core/ownership.js';
import type { CloseReport } from '../../src/shell/scope.js';
import { assertNoViolations, invariantAfterClose, releasedFilesAreGone, withDeadline } from './invariants.js';
import { isInjected, MemoryFs, type FsOpName } from './memory-fs.js';
import type { ScopeFactory, ScopeUnderTest } from './scopes.js';

export const OWNERS = ['input', 'buffer', 'filter[0]:squash', 'output'] as const;
export type Owner = (typeof OWNERS)[number];

/** Run dir parent on the /tmp device; destinations on both devices; Beside targets on /out. */
const RUN_PARENT = '/tmp';
const SAME_DEVICE_DEST = '/tmp/dest';
const OTHER_DEVICE_DEST = '/out/dest';
const BESIDE_DIR = '/out/final';

type FileModel = Owner | 'moved' | 'released';

interface Model {
  /** index of creation → owner, or a final state. */
  readonly files: Map<number, FileModel>;
  /** Who last owned each file (the owner a double release would name). */
  readonly lastOwner: Map<number, Owner>;
  /** Faults queued in the memory fs, in order (the model consumes them as the fs will). */
  readonly faults: Array<{ op: FsOpName; code: string }>;
  created: number;
  closed: boolean;
}

interface Real {
  readonly fs: MemoryFs;
  readonly scope: ScopeUnderTest;
  readonly files: Map<number, TempFile>;
  readonly destinations: Map<number, string>;
  report: CloseReport | undefined;
  /** What actually ran, by outcome (coverage statistics). */
  readonly stats: Map<string, number> | undefined;
}

function count(r: Real, what: string): void {
  r.stats?.set(what, (r.stats.get(what) ?? 0) + 1);
}

type Cmd = fc.AsyncCommand<Model, Real, boolean>;

function liveIndexes(m: Model): number[] {
  return [...m.files].filter(([, s]) => s !== 'moved' && s !== 'released').map(([i]) => i);
}

function finalIndexes(m: Model): number[] {
  return [...m.files].filter(([, s]) => s === 'moved' || s === 'released').map(([i]) => i);
}

function pick(list: number[], n: number): number {
  return list[n % list.length] as number;
}

function takeFault(m: Model, op: FsOpName): { op: FsOpName; code: string } | undefined {
  const i = m.faults.findIndex((f) => f.op === op);
  if (i < 0) return undefined;
  return m.faults.splice(i, 1)[0];
}

function fail(message: string): never {
  throw new Error(message);
}

async function expectOwnershipError(p: Promise<unknown>, what: string): Promise<void> {
  try {
    await p;
  } catch (e) {
    if (e instanceof OwnershipError) return;
    fail(`${what}: expected an OwnershipError, got ${String(e)}`);
  }
  fail(`${what}: expected an OwnershipError, but it succeeded`);
}

function contentFor(i: number): string {
  return `file-${i}`;
}

// ----- commands --------------------------------------------------------------------------

class CreateTemp implements Cmd {
  constructor(
    readonly owner: Owner,
    readonly beside: boolean,
  ) {}
  check(m: Readonly<Model>): boolean {
    return !m.closed;
  }
  async run(m: Model, r: Real): Promise<void> {
    const index = m.created;
    const location: TempLocation | undefined = this.beside ? { _tag: 'Beside', target: `${BESIDE_DIR}/image-${index}.tar` } : undefined;
    const fault = takeFault(m, 'createExclusive');
    const before = r.scope.ledger.all().length;
    const p = r.scope.perform({ _tag: 'CreateTemp', owner: this.owner, purpose: `t${index}`, ...(location ? { location } : {}) });
    if (fault) {
      const error = await p.then(
        () => fail('CreateTemp should have failed (injected createExclusive fault)'),
        (e: unknown) => e,
      );
      if (!isInjected(error)) fail(`CreateTemp failed with ${String(error)}, not the injected fault`);
      if (r.scope.ledger.all().length !== before) fail('a failed CreateTemp left a ledger entry');
      count(r, 'CreateTemp:failed');
      return;
    }
    const file = await p;
    if (!r.fs.isFile(file.path) || r.fs.contentOf(file.path) !== '') fail(`CreateTemp: ${file.path} is not a new empty file`);
    const expectedDir = this.beside ? BESIDE_DIR : r.scope.runDir;
    if (!file.path.startsWith(`${expectedDir}/`)) fail(`CreateTemp: ${file.path} is not under ${expectedDir}`);
    await r.fs.writeFile(file.path, contentFor(index));
    count(r, this.beside ? 'CreateTemp:beside' : 'CreateTemp:runDir');
    m.created++;
    m.files.set(index, this.owner);
    m.lastOwner.set(index, this.owner);
    r.files.set(index, file);
  }
  toString(): string {
    return `CreateTemp(${this.owner}${this.beside ? ', Beside' : ''})`;
  }
}

/** A command on one live file, `live[n]`: it applies while some file is live. */
abstract class OnLiveFile implements Cmd {
  constructor(readonly n: number) {}
  check(m: Readonly<Model>): boolean {
    return liveIndexes(m as Model).length > 0;
  }
  /** The live file the command is about: its index, its temp file and its owner. */
  protected target(m: Model, r: Real): { i: number; file: TempFile; owner: Owner } {
    const i = pick(liveIndexes(m), this.n);
    return { i, file: r.files.get(i) as TempFile, owner: m.files.get(i) as Owner };
  }
  abstract run(m: Model, r: Real): Promise<void>;
  abstract toString(): string;
}

class HandOver extends OnLiveFile {
  constructor(
    n: number,
    readonly to: Owner,
  ) {
    super(n);
  }
  async run(m: Model, r: Real): Promise<void> {
    const { i, file, owner: from } = this.target(m, r);
    const ops = r.fs.log.length;
    await r.scope.perform({ _tag: 'HandOver', file, from, to: this.to });
    if (r.fs.log.length !== ops) fail('HandOver touched the file system');
    count(r, 'HandOver');
    m.files.set(i, this.to);
    m.lastOwner.set(i, this.to);
  }
  toString(): string {
    return `HandOver(live[${this.n}] -> ${this.to})`;
  }
}

class Release extends OnLiveFile {
  async run(m: Model, r: Real): Promise<void> {
    const { i, file, owner } = this.target(m, r);
    await r.scope.perform({ _tag: 'Release', file, owner });
    if (r.fs.exists(file.path)) fail(`Release: ${file.path} is still on disk`);
    const unlinks = r.fs.opsOn('unlink', file.path).length;
    if (unlinks !== 1) fail(`Release: ${file.path} was unlinked ${unlinks} times`);
    m.files.set(i, 'released');
    count(r, 'Release');
  }
  toString(): string {
    return `Release(live[${this.n}])`;
  }
}

class MoveIntoPlace extends OnLiveFile {
  constructor(
    n: number,
    readonly otherDevice: boolean,
  ) {
    super(n);
  }
  async run(m: Model, r: Real): Promise<void> {
    const { i, file, owner } = this.target(m, r);
    const destination = `${this.otherDevice ? OTHER_DEVICE_DEST : SAME_DEVICE_DEST}/m${i}`;
    const crossDevice = r.fs.deviceOf(file.path) !== r.fs.deviceOf(destination);
    // Predict: rename; on EXDEV (real or injected) copy to staging + rename staging.
    let expect: 'moved' | 'copied' | 'fails';
    const renameFault = takeFault(m, 'rename');
    if (renameFault && renameFault.code !== 'EXDEV') expect = 'fails';
    else if (!renameFault && !crossDevice) expect = 'moved';
    else if (takeFault(m, 'copyFile')) expect = 'fails';
    else expect = takeFault(m, 'rename') ? 'fails' : 'copied';

    const outcome = await r.scope.perform({ _tag: 'MoveIntoPlace', file, owner, destination }).then(
      (v) => ({ ok: true as const, copied: v.copied }),
      (e: unknown) => ({ ok: false as const, error: e }),
    );
    const strays = [...r.fs.filesUnder(SAME_DEVICE_DEST), ...r.fs.filesUnder(OTHER_DEVICE_DEST)].filter((p) => p.includes('.occystrap-copy-'));
    if (strays.length > 0) fail(`MoveIntoPlace left staging files: ${strays.join(', ')}`);
    if (expect === 'fails') {
      if (outcome.ok) fail(`MoveIntoPlace to ${destination} should have failed (injected fault)`);
      if (!isInjected(outcome.error)) fail(`MoveIntoPlace failed with ${String(outcome.error)}, not the injected fault`);
      if (r.fs.contentOf(file.path) !== contentFor(i)) fail(`a failed move lost the source ${file.path}`);
      if (r.fs.exists(destination)) fail(`a failed move left ${destination}`);
      count(r, 'MoveIntoPlace:failed');
      return; // still live, same owner
    }
    if (!outcome.ok) fail(`MoveIntoPlace to ${destination} failed: ${String(outcome.error)}`);
    if (outcome.copied !== (expect === 'copied')) fail(`MoveIntoPlace reported copied=${outcome.copied}, expected ${expect}`);
    if (r.fs.exists(file.path)) fail(`MoveIntoPlace left the temp file ${file.path}`);
    if (r.fs.contentOf(destination) !== contentFor(i)) fail(`MoveIntoPlace: ${destination} does not hold the file's content`);
    m.files.set(i, 'moved');
    r.destinations.set(i, destination);
    count(r, `MoveIntoPlace:${expect}`);
  }
  toString(): string {
    return `MoveIntoPlace(live[${this.n}], ${this.otherDevice ? 'other device' : 'same device'})`;
  }
}

/** A stage that does not own the file asks to release/hand over/move it: rejected, no I/O. */
class WrongOwner extends OnLiveFile {
  constructor(
    n: number,
    readonly shift: number,
    readonly action: 'Release' | 'HandOver' | 'MoveIntoPlace',
  ) {
    super(n);
  }
  async run(m: Model, r: Real): Promise<void> {
    const { i, file, owner } = this.target(m, r);
    const wrong = OWNERS[(OWNERS.indexOf(owner) + 1 + (this.shift % (OWNERS.length - 1))) % OWNERS.length] as Owner;
    const ops = r.fs.log.length;
    const state = JSON.stringify(r.scope.ledger.entry(file.id)?.state);
    const p =
      this.action === 'Release'
        ? r.scope.perform({ _tag: 'Release', file, owner: wrong })
        : this.action === 'HandOver'
          ? r.scope.perform({ _tag: 'HandOver', file, from: wrong, to: wrong })
          : r.scope.perform({ _tag: 'MoveIntoPlace', file, owner: wrong, destination: `${SAME_DEVICE_DEST}/wrong${i}` });
    await expectOwnershipError(p, `${this.action} by ${wrong} of a file owned by ${owner}`);
    if (r.fs.log.length !== ops) fail(`a rejected ${this.action} touched the file system`);
    if (JSON.stringify(r.scope.ledger.entry(file.id)?.state) !== state) fail(`a rejected ${this.action} changed the ledger`);
    if (!r.fs.isFile(file.path)) fail(`a rejected ${this.action} lost ${file.path}`);
    count(r, `WrongOwner:${this.action}`);
  }
  toString(): string {
    return `WrongOwner${this.action}(live[${this.n}], +${this.shift})`;
  }
}

/** Releasing (or moving) a file that already reached a final state: rejected, no I/O. */
class DoubleRelease implements Cmd {
  constructor(
    readonly n: number,
    readonly action: 'Release' | 'MoveIntoPlace',
  ) {}
  check(m: Readonly<Model>): boolean {
    return finalIndexes(m as Model).length > 0;
  }
  async run(m: Model, r: Real): Promise<void> {
    const i = pick(finalIndexes(m), this.n);
    const file = r.files.get(i) as TempFile;
    const owner = m.lastOwner.get(i) as Owner;
    const ops = r.fs.log.length;
    const p =
      this.action === 'Release'
        ? r.scope.perform({ _tag: 'Release', file, owner })
        : r.scope.perform({ _tag: 'MoveIntoPlace', file, owner, destination: `${SAME_DEVICE_DEST}/again${i}` });
    await expectOwnershipError(p, `second ${this.action} of a ${m.files.get(i)} file`);
    if (r.fs.log.length !== ops) fail(`a rejected second ${this.action} touched the file system`);
    const dest = r.destinations.get(i);
    if (dest !== undefined && r.fs.contentOf(dest) !== contentFor(i)) fail(`a rejected second ${this.action} damaged ${dest}`);
    count(r, `Double:${this.action}`);
  }
  toString(): string {
    return `Double${this.action}(final[${this.n}])`;
  }
}

const FAULTS: ReadonlyArray<{ op: FsOpName; code: string }> = [
  { op: 'createExclusive', code: 'EIO' },
  { op: 'rename', code: 'EIO' },
  { op: 'rename', code: 'EXDEV' },
  { op: 'copyFile', code: 'EIO' },
];

class InjectFault implements Cmd {
  constructor(readonly fault: { op: FsOpName; code: string }) {}
  check(m: Readonly<Model>): boolean {
    return !m.closed && m.faults.length < 3;
  }
  async run(m: Model, r: Real): Promise<void> {
    r.fs.failNext(this.fault.op, this.fault.code);
    m.faults.push(this.fault);
    count(r, 'InjectFault');
  }
  toString(): string {
    return `InjectFault(${this.fault.op}, ${this.fault.code})`;
  }
}

class CloseScope implements Cmd {
  check(m: Readonly<Model>): boolean {
    return !m.closed;
  }
  async run(m: Model, r: Real): Promise<void> {
    const live = liveIndexes(m);
    const report = await r.scope.close();
    r.report = report;
    if (report.released !== live.length) fail(`close released ${report.released} files, the model has ${live.length} live`);
    for (const i of live) {
      m.files.set(i, 'released');
      const file = r.files.get(i) as TempFile;
      if (r.fs.exists(file.path)) fail(`close left ${file.path}`);
    }
    m.closed = true;
    assertNoViolations(invariantAfterClose(r.scope, r.fs, report), () => '');
    for (const [i, dest] of r.destinations) {
      if (r.fs.contentOf(dest) !== contentFor(i)) fail(`close damaged the moved file ${dest}`);
    }
    // Idempotent, and nothing can be created any more.
    const ops = r.fs.log.length;
    if ((await r.scope.close()) !== report) fail('a second close() returned a different report');
    await expectOwnershipError(r.scope.perform({ _tag: 'CreateTemp', owner: 'input', purpose: 'late' }), 'CreateTemp after close');
    if (r.fs.log.length !== ops) fail('close() again / CreateTemp after close touched the file system');
    count(r, live.length > 0 ? 'CloseScope:withLeftovers' : 'CloseScope:empty');
  }
  toString(): string {
    return 'CloseScope';
  }
}

const ownerArb = fc.constantFrom(...OWNERS);

const createArb = fc.tuple(ownerArb, fc.boolean()).map(([o, b]) => new CreateTemp(o, b));
const handOverArb = fc.tuple(fc.nat(), ownerArb).map(([n, o]) => new HandOver(n, o));
const releaseArb = fc.nat().map((n) => new Release(n));
const moveArb = fc.tuple(fc.nat(), fc.boolean()).map(([n, b]) => new MoveIntoPlace(n, b));

/** fc.commands picks uniformly among its arbitraries: repeats weight the common steps. */
export const ownershipCommands = fc.commands(
  [
    createArb,
    createArb,
    createArb,
    handOverArb,
    handOverArb,
    releaseArb,
    releaseArb,
    moveArb,
    moveArb,
    moveArb,
    fc.tuple(fc.nat(), fc.nat(), fc.constantFrom('Release' as const, 'HandOver' as const, 'MoveIntoPlace' as const)).map(([n, s, a]) => new WrongOwner(n, s, a)),
    fc.tuple(fc.nat(), fc.constantFrom('Release' as const, 'MoveIntoPlace' as const)).map(([n, a]) => new DoubleRelease(n, a)),
    fc.constantFrom(...FAULTS).map((f) => new InjectFault(f)),
    fc.constant(new CloseScope()),
  ],
  { maxCommands: 40, size: 'medium' },
);

async function openEnv(factory: ScopeFactory, fs: MemoryFs, stats?: Map<string, number>): Promise<Real> {
  for (const d of [SAME_DEVICE_DEST, OTHER_DEVICE_DEST, BESIDE_DIR]) await fs.mkdir(d).catch(() => undefined);
  const scope = await factory(fs, RUN_PARENT);
  return { fs, scope, files: new Map(), destinations: new Map(), report: undefined, stats };
}

/** Model-based: every command's effect on the ledger and the fs is predicted exactly. */
export function ownershipModelProperty(factory: ScopeFactory, stats?: Map<string, number>) {
  return fc.asyncProperty(ownershipCommands, async (cmds) => {
    const fs = new MemoryFs({ dirs: ['/tmp', '/out'] });
    const real = await openEnv(factory, fs, stats);
    const model: Model = { files: new Map(), lastOwner: new Map(), faults: [], created: 0, closed: false };
    await fc.asyncModelRun(() => ({ model, real }), cmds);
    // asyncModelRun has no teardown: close here (if no CloseScope ran) and check the end state.
    fs.clearFaults();
    const report = real.report ?? (await real.scope.close());
    assertNoViolations([...releasedFilesAreGone(real.scope, fs), ...invariantAfterClose(real.scope, fs, report)], () => `fs log:\n${fs.log.map((e) => `  ${e.op}(${e.args.join(', ')}) ${e.outcome}`).join('\n')}`);
  });
}

// ----- interleavings ----------------------------------------------------------------------

type Step = { readonly kind: 'handOver'; readonly to: Owner } | { readonly kind: 'release' } | { readonly kind: 'move'; readonly otherDevice: boolean };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  ownerArb.map((to): Step => ({ kind: 'handOver', to })),
  fc.constant<Step>({ kind: 'release' }),
  fc.boolean().map((otherDevice): Step => ({ kind: 'move', otherDevice })),
);

export const interleavingArb = fc.record({
  /** One chain of steps per file; chains run concurrently. */
  chains: fc.array(fc.record({ beside: fc.boolean(), steps: fc.array(stepArb, { maxLength: 4 }) }), { minLength: 1, maxLength: 6 }),
  /** When close() starts: after this many scheduler steps (it races with the chains). */
  closeAfter: fc.nat({ max: 30 }),
  faults: fc.array(fc.record({ fault: fc.constantFrom(...FAULTS), skip: fc.nat({ max: 4 }) }), { maxLength: 3 }),
});

/**
 * Several files, each created and then walked through hand-overs, moves and releases by
 * its own async chain, with `close()` starting at a random scheduler step: every fs
 * operation's completion order is chosen by the scheduler. Operations may be rejected
 * (injected faults; ownership errors once close has taken the files), but the end state
 * must satisfy the invariant and agree with what each operation reported.
 */
export function interleavedOwnershipProperty(factory: ScopeFactory) {
  return fc.asyncProperty(interleavingArb, fc.scheduler(), async (spec, s) => {
    const fs = new MemoryFs({ dirs: ['/tmp', '/out'], scheduler: s });
    const ctx = () => `scheduler:\n${s.report().map((t) => `  ${t.status} ${t.label}`).join('\n')}`;
    const real = await withDeadline(s.waitFor(openEnv(factory, fs)), 5000, 'open', ctx);
    for (const { fault, skip } of spec.faults) fs.failNext(fault.op, fault.code, { skip });
    const moved = new Map<number, string>();
    const unexpected: string[] = [];
    let closeStarted = false;

    const chain = async (index: number, beside: boolean, steps: readonly Step[]) => {
      let owner: Owner = 'input';
      let file: TempFile;
      try {
        file = await real.scope.perform({
          _tag: 'CreateTemp',
          owner,
          purpose: `c${index}`,
          ...(beside ? { location: { _tag: 'Beside', target: `${BESIDE_DIR}/image-${index}.tar` } as const } : {}),
        });
      } catch (e) {
        if (!isInjected(e) && !(e instanceof OwnershipError && closeStarted)) unexpected.push(`create ${index}: ${String(e)}`);
        return;
      }
      try {
        for (const step of steps) {
          if (step.kind === 'handOver') {
            await real.scope.perform({ _tag: 'HandOver', file, from: owner, to: step.to });
            owner = step.to;
          } else if (step.kind === 'release') {
            await real.scope.perform({ _tag: 'Release', file, owner });
            return;
          } else {
            const destination = `${step.otherDevice ? OTHER_DEVICE_DEST : SAME_DEVICE_DEST}/m${index}`;
            try {
              await real.scope.perform({ _tag: 'MoveIntoPlace', file, owner, destination });
              moved.set(file.id, destination);
              return;
            } catch (e) {
              if (!isInjected(e)) throw e;
              // An injected fault leaves the file with us: carry on with the next step.
            }
          }
        }
      } catch (e) {
        if (!(e instanceof OwnershipError && closeStarted)) unexpected.push(`chain ${index}: ${String(e)}`);
      }
    };

    const chains = spec.chains.map((c, i) => chain(i, c.beside, c.steps));
    let countdown = spec.closeAfter;
    const closing = (async () => {
      while (countdown-- > 0) await s.schedule(Promise.resolve(), 'tick');
      closeStarted = true;
      return real.scope.close();
    })();
    const all = Promise.all([Promise.all(chains), closing]);
    const [, report] = await withDeadline(s.waitFor(all), 5000, 'chains + close', ctx);
    await withDeadline(s.waitIdle(), 5000, 'idle', ctx);

    const violations = [...unexpected, ...releasedFilesAreGone(real.scope, fs), ...invariantAfterClose(real.scope, fs, report)];
    for (const [id, dest] of moved) {
      const e = real.scope.ledger.entry(id as TempFile['id']);
      if (e?.state._tag !== 'Moved') violations.push(`move of #${id} resolved but the ledger says ${JSON.stringify(e?.state)}`);
      if (!fs.isFile(dest)) violations.push(`move of #${id} resolved but ${dest} is missing`);
    }
    for (const e of real.scope.ledger.all()) {
      if (e.state._tag === 'Moved' && !moved.has(e.id)) violations.push(`#${e.id} is Moved but no move resolved`);
    }
    const strays = [...fs.filesUnder(SAME_DEVICE_DEST), ...fs.filesUnder(OTHER_DEVICE_DEST), ...fs.filesUnder(BESIDE_DIR)].filter(
      (p) => ![...moved.values()].includes(p),
    );
    if (strays.length > 0) violations.push(`files left outside the run dir: ${strays.join(', ')}`);
    assertNoViolations(violations, ctx);
  });
}
