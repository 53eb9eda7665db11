/**
 * occystrap as a library: the core combinators plus the shell's inputs, outputs and
 * temp-file scope.
 *
 * @example
 * ```ts
 * import { runPipeline, TempScope, DockerSaveInput, DirOutput } from 'occystrap';
 * const scope = await TempScope.open({ parent: os.tmpdir() });
 * try {
 *   await runPipeline({
 *     input: new DockerSaveInput({ path: 'image.tar', selector: { _tag: 'First' } }),
 *     output: new DirOutput({ path: 'store', uniqueNames: false }),
 *     effects: scope,
 *   });
 * } finally {
 *   await scope.close();
 * }
 * ```
 *
 * @module
 */
export * from './core/index.js';
export { TempScope, type ScopeOptions, type CloseReport } from './shell/scope.js';
export { nodeTempFs } from './shell/fs/node-temp-fs.js';
export { DockerSaveInput, type DockerSaveInputOptions } from './shell/inputs/docker-save.js';
export { TarOutput, type TarOutputOptions } from './shell/outputs/tar.js';
export { DirOutput, type DirOutputOptions } from './shell/outputs/dir.js';
export { OciLayoutOutput, type OciLayoutOutputOptions } from './shell/outputs/oci-layout.js';
export { openInput, openOutput } from './shell/endpoints.js';
/**
 * What `openInput` and `openOutput` read: any of the CLI's global settings (`insecure`,
 * `username`, `password`, `retries`, `platform`, `parallel`, `compression`, …; defaults
 * for the rest) and the environment used for credentials (default `process.env`).
 */
export type { TransportSettings as InputSettings } from './shell/transports/types.js';
export type { GlobalSettings } from './shell/cli/options.js';
export type { LogLevel } from './shell/log.js';
/** The platform picked from a multi-platform index (`{ os, architecture, variant }`). */
export { type PlatformWanted, DEFAULT_PLATFORM, describePlatform } from './core/platform.js';
export { main as runCli } from './shell/cli/main.js';
/** The CLI's `-f` specs (`normalize-timestamps:ts=0`, `exclude:pattern=GLOB`, …) as filters. */
export { buildFilters } from './shell/filters.js';
/** The LayerFiles port on the local file system, for constructing the content filters directly. */
export { nodeLayerFiles } from './shell/fs/layer-files.js';
