/**
 * The effect handler under test, as a factory, so the same property bodies run against
 * the real {@link TempScope} and against deliberately broken handlers (test-of-tests).
 *
 * @module
 */
import type { TempFsPort } from '../../src/core/fs-port.js';
import type { Effects, Ledger, OwnershipEffect, ReplyOf, TranscodedFile } from '../../src/core/ownership.js';
import type { LayerCodecs } from '../../src/shell/fs/transcode.js';
import { type CloseReport, TempScope } from '../../src/shell/scope.js';

/** What the properties need from a handler: effects, its ledger, its run dir, close. */
export interface ScopeUnderTest extends Effects {
  readonly ledger: Ledger;
  readonly runDir: string;
  close(): Promise<CloseReport>;
}

/** Opens a handler over `fs` whose run dir goes under `parent`; `Inflate`/`Compress` through `codecs`. */
export type ScopeFactory = (fs: TempFsPort, parent: string, codecs?: LayerCodecs) => Promise<ScopeUnderTest>;

function open(fs: TempFsPort, parent: string, codecs: LayerCodecs | undefined): Promise<TempScope> {
  return TempScope.open({ parent, fs, ...(codecs ? { codecs } : {}) });
}

/** The real handler. */
export const realScope: ScopeFactory = (fs, parent, codecs) => open(fs, parent, codecs);

/** Forwards everything to a real scope; the broken variants override one behaviour. */
class Delegating implements ScopeUnderTest {
  constructor(
    protected readonly inner: TempScope,
    protected readonly fs: TempFsPort,
  ) {}
  get ledger(): Ledger {
    return this.inner.ledger;
  }
  get runDir(): string {
    return this.inner.runDir;
  }
  perform<E extends OwnershipEffect>(effect: E): Promise<ReplyOf<E>> {
    return this.inner.perform(effect);
  }
  close(): Promise<CloseReport> {
    return this.inner.close();
  }
}

/** BROKEN: after every release it unlinks the file a second time, behind the ledger's back. */
class DoubleReleasing extends Delegating {
  override async perform<E extends OwnershipEffect>(effect: E): Promise<ReplyOf<E>> {
    const reply = await this.inner.perform(effect);
    if (effect._tag === 'Release') await this.fs.unlink(effect.file.path).catch(() => undefined);
    return reply;
  }
}

/** BROKEN: marks a released file released in the ledger but never unlinks it. */
class ForgetfulRelease extends Delegating {
  override async perform<E extends OwnershipEffect>(effect: E): Promise<ReplyOf<E>> {
    if (effect._tag === 'Release') {
      this.inner.ledger.release(effect.file, effect.owner);
      return undefined as ReplyOf<E>;
    }
    return this.inner.perform(effect);
  }
}

/** BROKEN: close() marks the leftovers released but does not remove them (nor sweep strays). */
class LeakyClose extends Delegating {
  private report: Promise<CloseReport> | undefined;
  override close(): Promise<CloseReport> {
    this.report ??= (async () => {
      const leftovers = this.inner.ledger.closeAll('scope');
      await this.fs.removeDir(this.inner.runDir).catch(() => undefined);
      return { released: leftovers.length, problems: [] };
    })();
    return this.report;
  }
}

/**
 * BROKEN: performs `Inflate`/`Compress` itself (a new temp file, then the codec) and, when
 * the codec fails, forgets the new file: it stays live in the ledger, half written.
 */
class LeakyTranscode extends Delegating {
  constructor(
    inner: TempScope,
    fs: TempFsPort,
    private readonly codecs: LayerCodecs | undefined,
  ) {
    super(inner, fs);
  }
  override async perform<E extends OwnershipEffect>(effect: E): Promise<ReplyOf<E>> {
    if ((effect._tag !== 'Inflate' && effect._tag !== 'Compress') || !this.codecs) return this.inner.perform(effect);
    this.inner.ledger.checkOwned(effect.source, effect.owner, effect._tag);
    const made = await this.inner.perform({ _tag: 'CreateTemp', owner: effect.owner, purpose: effect.purpose });
    const result =
      effect._tag === 'Inflate'
        ? await this.codecs.inflate(effect.source.path, made.path, effect.compression)
        : await this.codecs.compress(effect.source.path, made.path, effect.compression);
    const reply: TranscodedFile = { file: made, digest: result.digest, size: result.size };
    return reply as ReplyOf<E>;
  }
}

export const brokenScopes: Record<'doubleRelease' | 'forgetRelease' | 'leakyClose', ScopeFactory> = {
  doubleRelease: async (fs, parent, codecs) => new DoubleReleasing(await open(fs, parent, codecs), fs),
  forgetRelease: async (fs, parent, codecs) => new ForgetfulRelease(await open(fs, parent, codecs), fs),
  leakyClose: async (fs, parent, codecs) => new LeakyClose(await open(fs, parent, codecs), fs),
};

/** Broken handlers that only the forms properties exercise (they need `Inflate`/`Compress`). */
export const brokenTranscodeScopes: Record<'leakyTranscode', ScopeFactory> = {
  leakyTranscode: async (fs, parent, codecs) => new LeakyTranscode(await open(fs, parent, codecs), fs, codecs),
};
