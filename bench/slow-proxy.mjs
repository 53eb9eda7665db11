// A "slow link" reverse proxy on 127.0.0.1 for the -j benchmark: every request
// waits `latencyMs` before it is forwarded (a round trip before the first byte),
// and every response body is paced to `bytesPerSecond` on its own connection
// (so N parallel downloads get N times the bandwidth, like per-connection
// limits on real links). Bounded: it answers 599 after `maxRequests` requests
// and stops itself after `idleMs` without a request.
import http from 'node:http';
import { once } from 'node:events';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Resolves on 'drain' or 'close', removing both listeners. */
function drained(res) {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

function forwardHeaders(headers) {
  const out = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
  return out;
}

/**
 * @param {string} upstream e.g. "http://127.0.0.1:5000"
 * @param {{latencyMs?: number, bytesPerSecond?: number, maxRequests?: number, idleMs?: number}} options
 */
export async function startSlowProxy(upstream, options = {}) {
  const latencyMs = options.latencyMs ?? 50;
  const bps = options.bytesPerSecond ?? 8 << 20;
  const maxRequests = options.maxRequests ?? 20000;
  const idleMs = options.idleMs ?? 120000;
  const up = new URL(upstream);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const stats = { requests: 0, bytes: 0, maxConcurrent: 0, active: 0 };
  /** The last 1000 requests: start (ms since the proxy started), method, path, status, bytes, end. */
  const log = [];
  const t0 = Date.now();
  let idleTimer;
  let stopping;

  const server = http.createServer((req, res) => {
    stats.requests++;
    armIdle();
    if (stats.requests > maxRequests) {
      req.resume();
      res.writeHead(599, { 'content-type': 'text/plain' }).end('slow proxy: request limit reached\n');
      return;
    }
    stats.active++;
    stats.maxConcurrent = Math.max(stats.maxConcurrent, stats.active);
    const entry = { start: Date.now() - t0, method: req.method, path: req.url, status: 0, bytes: 0, end: 0 };
    log.push(entry);
    if (log.length > 1000) log.shift();
    res.on('close', () => {
      stats.active--;
      entry.end = Date.now() - t0;
    });
    setTimeout(() => {
      const upReq = http.request(
        { hostname: up.hostname, port: up.port, method: req.method, path: req.url, headers: forwardHeaders(req.headers), agent },
        (upRes) => {
          entry.status = upRes.statusCode ?? 502;
          res.writeHead(upRes.statusCode ?? 502, forwardHeaders(upRes.headers));
          res.on('close', () => {
            if (!res.writableFinished) upRes.destroy();
          });
          // Paced by absolute schedule (start + sent/bps), in ~20 ms slices.
          const slice = Math.max(1024, Math.floor(bps / 50));
          const start = Date.now();
          let sent = 0;
          const pump = async () => {
            for await (const chunk of upRes) {
              for (let o = 0; o < chunk.length; o += slice) {
                const piece = chunk.subarray(o, o + slice);
                const due = start + ((sent + piece.length) / bps) * 1000;
                const wait = due - Date.now();
                if (wait > 0) await sleep(wait);
                if (res.destroyed) return;
                sent += piece.length;
                stats.bytes += piece.length;
                entry.bytes += piece.length;
                if (!res.write(piece)) await drained(res);
              }
            }
            res.end();
          };
          pump().catch(() => res.destroy());
        },
      );
      upReq.on('error', (e) => {
        if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' }).end(`slow proxy: ${e.message}\n`);
        else res.destroy();
      });
      req.pipe(upReq);
    }, latencyMs);
  });
  server.keepAliveTimeout = 5000;

  function armIdle() {
    clearTimeout(idleTimer);
    idleTimer = setTimeout(() => void stop(), idleMs);
    idleTimer.unref();
  }

  function stop() {
    stopping ??= new Promise((resolve) => {
      clearTimeout(idleTimer);
      server.close(() => resolve());
      server.closeAllConnections();
      agent.destroy();
    });
    return stopping;
  }

  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  armIdle();
  const { port } = server.address();
  return { host: `127.0.0.1:${port}`, url: `http://127.0.0.1:${port}`, stats, log, stop };
}
