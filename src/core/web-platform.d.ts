/**
 * The only host APIs the core may use: WHATWG web-platform globals that Node, Deno, Bun
 * and browsers all provide. `tsconfig.core.json` type-checks src/core with this file
 * and no Node types, so `node:*` imports, `process`, `Buffer` or undici in the core fail
 * the build (`npm run check:core`, part of `npm test`). The main build excludes it:
 * there @types/node declares the same globals.
 */

interface AbortSignal {
  readonly aborted: boolean;
  readonly reason: unknown;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}
declare var AbortSignal: { prototype: AbortSignal };

interface AbortController {
  readonly signal: AbortSignal;
  abort(reason?: unknown): void;
}
declare var AbortController: { prototype: AbortController; new (): AbortController };

interface TextEncoder {
  encode(input?: string): Uint8Array;
}
declare var TextEncoder: { prototype: TextEncoder; new (): TextEncoder };

interface TextDecoder {
  decode(input?: Uint8Array, options?: { stream?: boolean }): string;
}
declare var TextDecoder: { prototype: TextDecoder; new (label?: string, options?: { fatal?: boolean; ignoreBOM?: boolean }): TextDecoder };

interface URL {
  readonly hostname: string;
  readonly host: string;
  readonly port: string;
}
declare var URL: { prototype: URL; new (url: string, base?: string): URL };
