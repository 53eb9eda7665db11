export * from './common.js';
export * from './oci.js';
export * from './docker-save.js';
