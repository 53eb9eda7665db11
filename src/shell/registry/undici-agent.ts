/**
 * undici's `Agent` with its request API, loaded without the rest of undici (fetch,
 * WebSocket, mocks, caches): the registry client needs only these, and all of undici
 * adds ~40 ms to the start-up of every registry run.
 *
 * @module
 */
import type { Agent as UndiciAgent } from 'undici';
import AgentImpl from 'undici/lib/dispatcher/agent.js';
import DispatcherImpl from 'undici/lib/dispatcher/dispatcher.js';
import api from 'undici/lib/api/index.js';

// What undici's own index does: the request/stream/pipeline methods live on Dispatcher.
Object.assign((DispatcherImpl as { prototype: object }).prototype, api);

export const Agent = AgentImpl as typeof UndiciAgent;
