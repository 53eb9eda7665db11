/**
 * The forms model: what a successful run of the forms pipeline must do with each layer,
 * predicted from the documented rules alone (element.ts, layer-forms.ts, copy-image.ts),
 * not from the code under test:
 *
 * - `wants` composes from the destination back to the input; the `asked` input makes
 *   exactly those forms (none = Skipped: present), the `tars` input the tar of whatever
 *   was asked, the `random` input its own;
 * - a stage that needs the tar and lacks it inflates once (`ensureTar`), keeping the blob
 *   only if it was told to; `keepForms` trims to what the stages after asked for;
 * - the copy loop gives the destination exactly the form it needs, inflating a tar or
 *   compressing a blob only when the payload lacks it, and the destination keeps the
 *   source's blob as it is when one arrives.
 *
 * Whether `exclude` changed a layer depends on its bytes; the model is told (`changed`),
 * read from the final config the destination received.
 *
 * @module
 */
import { Forms, type LayerForms, unionForms, wantsAny } from '../../src/core/element.js';
import type { Compression } from '../../src/core/media-types.js';
import { formsOf, type FormsDestSpec, type FormsFilterSpec, type FormsInputSpec } from './forms-pipeline.js';

type Payload = { readonly kind: 'skipped'; readonly reason: 'present' | 'duplicate' } | { readonly kind: 'data'; readonly tar: boolean; readonly blob: 'source' | 'made' | undefined };

export type Predicted =
  | { readonly record: 'Present' }
  | { readonly record: 'Duplicate'; readonly of: number }
  /** Stored: the file the destination holds (`kept`: it had the layer, nothing new). */
  | { readonly record: 'Stored'; readonly kept: boolean; readonly form: 'tar' | 'sourceBlob' | 'madeBlob' };

export interface LayerPrediction {
  readonly outcome: Predicted;
  readonly inflates: number;
  readonly compresses: number;
  /** Of those, the ones the copy loop performed (the summary's counters). */
  readonly loopInflates: number;
  readonly loopCompresses: number;
}

function keep(p: Extract<Payload, { kind: 'data' }>, after: LayerForms): Payload {
  const keptTar = p.tar && after.tar;
  const keptBlob = p.blob !== undefined && after.blob;
  const tar = keptTar || (!keptTar && !keptBlob && p.tar && after.blob);
  const blob = keptBlob || (!keptTar && !keptBlob && p.blob !== undefined && after.tar);
  if (!tar && !blob) return { kind: 'skipped', reason: 'present' };
  return { kind: 'data', tar, blob: blob ? p.blob : undefined };
}

/** The first layer a repeat's content came with. */
function carrier(input: FormsInputSpec, i: number): number {
  const r = input.layers[i]?.repeatOf;
  return r === undefined ? i : carrier(input, r);
}

export function predictLayer(
  input: FormsInputSpec,
  filters: readonly FormsFilterSpec[],
  dest: FormsDestSpec,
  i: number,
  changed: (i: number) => boolean,
): LayerPrediction {
  const layer = input.layers[i];
  if (!layer) throw new Error(`no layer ${i}`);
  const presentAtDest = (diffIdChanged: boolean) => !diffIdChanged && dest.present.some((j) => carrier(input, j) === carrier(input, i));
  // wants, from the destination back to the input, remembering what each filter's "after" asked.
  const after: LayerForms[] = [];
  let asked: LayerForms = presentAtDest(false) ? Forms.none : dest.needs === 'tar' ? Forms.tar : Forms.blob;
  for (let f = filters.length - 1; f >= 0; f--) {
    const spec = filters[f] as FormsFilterSpec;
    after[f] = asked;
    switch (spec.kind) {
      case 'keepOne':
        asked = wantsAny(asked) ? Forms.both : Forms.none;
        break;
      case 'readTar':
        if (spec.asks) asked = unionForms(asked, Forms.tar);
        break;
      case 'trim':
        break;
      case 'search':
      case 'exclude':
        asked = unionForms(asked, Forms.tar);
        break;
    }
  }
  let inflates = 0;
  let compresses = 0;
  let p: Payload;
  if (layer.repeatOf !== undefined) p = { kind: 'skipped', reason: 'duplicate' };
  else {
    const forms = input.kind === 'asked' ? asked : input.kind === 'tars' ? (wantsAny(asked) ? Forms.tar : Forms.none) : formsOf(layer.randomForm);
    p = wantsAny(forms) ? { kind: 'data', tar: forms.tar, blob: forms.blob ? 'source' : undefined } : { kind: 'skipped', reason: 'present' };
  }
  let rewritten = false;
  const ensureTar = (q: Extract<Payload, { kind: 'data' }>, keepBlob: boolean): Extract<Payload, { kind: 'data' }> => {
    if (!q.tar) inflates++;
    return { kind: 'data', tar: true, blob: keepBlob ? q.blob : undefined };
  };
  filters.forEach((spec, f) => {
    if (p.kind !== 'data') return;
    const a = after[f] as LayerForms;
    switch (spec.kind) {
      case 'keepOne':
        if (p.tar && p.blob) p = spec.keep === 'tar' ? { kind: 'data', tar: true, blob: undefined } : { kind: 'data', tar: false, blob: p.blob };
        break;
      case 'readTar':
        p = ensureTar(p, spec.keepBlob);
        break;
      case 'trim':
        p = keep(p, a);
        break;
      case 'search':
        p = keep(ensureTar(p, a.blob), a);
        break;
      case 'exclude': {
        const source = ensureTar(p, a.blob);
        // Excluding again drops nothing more: only the first exclude changes a layer.
        if (changed(i) && !rewritten) {
          rewritten = true;
          p = { kind: 'data', tar: true, blob: undefined };
        } else p = keep(source, a);
        break;
      }
    }
  });
  const before = { inflates, compresses };
  let outcome: Predicted;
  if (p.kind === 'skipped') outcome = p.reason === 'present' ? { record: 'Present' } : { record: 'Duplicate', of: carrier(input, i) };
  else {
    let form: 'tar' | 'sourceBlob' | 'madeBlob';
    if (dest.needs === 'tar') {
      if (!p.tar) inflates++;
      form = 'tar';
    } else if (p.blob === undefined) {
      compresses++;
      form = 'madeBlob';
    } else form = p.blob === 'source' ? 'sourceBlob' : 'madeBlob';
    outcome = { record: 'Stored', kept: presentAtDest(rewritten), form };
  }
  return { outcome, inflates, compresses, loopInflates: inflates - before.inflates, loopCompresses: compresses - before.compresses };
}

/** The compression a stored blob has. */
export function storedCompression(input: FormsInputSpec, dest: FormsDestSpec, i: number, form: 'sourceBlob' | 'madeBlob'): Compression {
  if (form === 'madeBlob') return dest.needs as Compression;
  return (input.layers[carrier(input, i)] ?? input.layers[i])!.compression;
}

/**
 * Whether `exclude` (`*.pyc`) changes layer `i`: it has a `.pyc` entry (every third file).
 * A layer it drops nothing from must come out byte for byte (keeping its digests).
 */
export function excludeChanges(input: FormsInputSpec, i: number): boolean {
  const l = input.layers[carrier(input, i)];
  return l !== undefined && l.files >= 3;
}
