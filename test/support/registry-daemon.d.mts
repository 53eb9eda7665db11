// Types of registry-daemon.mjs (plain JavaScript, shared with bench/).
import type { ChildProcess } from 'node:child_process';
import type { IncomingHttpHeaders } from 'node:http';

export declare const REGISTRY_BINARY: string;

export interface Daemon {
  readonly pid: number;
  readonly child: ChildProcess;
  /** The daemon's output so far (stdout folded into stderr). */
  logs(): string;
  /** Resolves with the exit code once the watchdog has exited. */
  readonly exited: Promise<number | null>;
  stop(): Promise<void>;
}

export declare function freePort(): Promise<number>;
export declare function probe(url: string, headers?: Record<string, string>): Promise<{ status: number; headers: IncomingHttpHeaders; body: string } | undefined>;
export declare function startDaemon(cmd: string, args: readonly string[]): Promise<Daemon>;
export declare function startRegistryDaemon(options: {
  configPath: string;
  config: (port: number) => string;
  readyStatuses?: readonly number[];
}): Promise<{ host: string; url: string; daemon: Daemon }>;
