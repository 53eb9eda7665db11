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
export * from './fs-port.js';
export * from './archive-path.js';
export * from './uri.js';
export * from './pipeline/types.js';
export * from './pipeline/hand-over.js';
export * from './pipeline/buffer.js';
export * from './pipeline/parallel-map.js';
export * from './pipeline/reorder.js';
export * from './pipeline/compose.js';
export * from './plans/docker-save.js';
export * from './plans/dir-store.js';
export * from './tar/header.js';
