/**
 * The pure core of occystrap: the element model, codecs, ownership effects and the
 * async-generator combinators. Nothing here touches the file system or the network.
 *
 * @module
 */
export * from './digest.js';
export * from './media-types.js';
export * from './codecs/index.js';
export * from './element.js';
export * from './errors.js';
export * from './ownership.js';
export * from './ledger-effects.js';
export * from './fs-port.js';
export * from './archive-path.js';
export * from './uri.js';
export * from './pipeline/types.js';
export * from './pipeline/hand-over.js';
export * from './pipeline/buffer.js';
export * from './pipeline/parallel-map.js';
export * from './pipeline/reorder.js';
export * from './pipeline/compose.js';
export * from './pipeline/layer-forms.js';
export * from './pipeline/copy-image.js';
export * from './plans/docker-save.js';
export * from './plans/dir-store.js';
export * from './plans/oci-layout.js';
export * from './tar/header.js';
export * from './bytes.js';
export * from './filters/glob.js';
export * from './filters/search.js';
export * from './filters/inspect.js';
export * from './check.js';
export * from './sha256.js';
export * from './tar/fields.js';
export * from './tar/reader.js';
export * from './tar/rewrite.js';
export * from './filters/layer-rewrite.js';
export * from './filters/normalize-timestamps.js';
export * from './filters/exclude.js';
export * from './filters/chain-hash.js';
export * from './extract/layer-apply.js';
