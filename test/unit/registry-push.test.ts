/**
 * The push protocol (src/shell/registry/push.ts) against a loopback registry written here
 * to do what distribution 2.8 cannot: report how much of a broken chunk it kept (`Range`
 * on the upload's status), so the resume from that offset is proven; and to refuse whole
 * bodies (413) and ask for a minimum chunk (`OCI-Chunk-Min-Length`). A streamed upload (fed
 * while the bytes arrive) goes up in one PUT, and says `done: false`, with its session
 * cancelled, when the registry refuses it.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { after, describe, test } from 'node:test';
import type { Digest } from '../../src/core/digest.js';
import { RegistryClient } from '../../src/shell/registry/client.js';
import { HttpClient } from '../../src/shell/registry/http.js';
import { BlobPusher } from '../../src/shell/registry/push.js';

interface Behaviour {
  /** Refuse a whole-blob PUT with 413. */
  refuseWhole?: boolean;
  /** Answer the POST with this OCI-Chunk-Min-Length. */
  minChunk?: number;
  /** Keep only this many bytes of the nth PATCH (1-based), then drop the connection. */
  breakPatch?: { nth: number; keep: number };
  /** Accept a cross-repository mount (201) instead of answering with an upload session (202). */
  mountOk?: boolean;
}

/** One upload session's bytes, a log of requests, and what the registry stores. */
async function fakeRegistry(behaviour: Behaviour) {
  const stored = new Map<string, Buffer>();
  let upload = Buffer.alloc(0);
  let patches = 0;
  const log: string[] = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const chunks: Buffer[] = [];
    const range = () => (upload.length > 0 ? { range: `0-${upload.length - 1}` } : {});
    log.push(`${req.method} ${url.pathname}${url.searchParams.has('mount') ? `?mount&from=${url.searchParams.get('from')}` : ''}${req.headers['content-range'] ? ` ${req.headers['content-range']}` : ''}`);
    if (req.method === 'PATCH' && behaviour.breakPatch && ++patches === behaviour.breakPatch.nth) {
      let kept = 0;
      req.on('data', (c: Buffer) => {
        const part = c.subarray(0, Math.max(0, behaviour.breakPatch!.keep - kept));
        kept += part.length;
        upload = Buffer.concat([upload, part]);
        if (kept >= behaviour.breakPatch!.keep) req.socket.destroy();
      });
      return;
    }
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (req.method === 'HEAD') {
        const blob = stored.get(url.pathname.split('/').pop() as string);
        res.writeHead(blob ? 200 : 404, blob ? { 'content-length': blob.length } : {}).end();
      } else if (req.method === 'POST' && url.searchParams.has('mount') && behaviour.mountOk) {
        res.writeHead(201, { location: `/v2/r/blobs/${url.searchParams.get('mount')}` }).end();
      } else if (req.method === 'POST') {
        upload = Buffer.alloc(0);
        res.writeHead(202, { location: '/v2/r/blobs/uploads/u1', ...(behaviour.minChunk ? { 'oci-chunk-min-length': String(behaviour.minChunk) } : {}) }).end();
      } else if (req.method === 'PATCH') {
        const start = Number(/^(\d+)-/.exec(String(req.headers['content-range']))?.[1]);
        if (start !== upload.length) return void res.writeHead(416, range()).end();
        upload = Buffer.concat([upload, body]);
        res.writeHead(202, { location: '/v2/r/blobs/uploads/u1', ...range() }).end();
      } else if (req.method === 'GET') {
        res.writeHead(204, { location: '/v2/r/blobs/uploads/u1', ...range() }).end();
      } else if (req.method === 'PUT') {
        if (behaviour.refuseWhole && body.length > 0) return void res.writeHead(413).end();
        upload = Buffer.concat([upload, body]);
        const digest = url.searchParams.get('digest') as string;
        if (`sha256:${createHash('sha256').update(upload).digest('hex')}` !== digest) return void res.writeHead(400).end('{"errors":[{"code":"DIGEST_INVALID"}]}');
        stored.set(digest, upload);
        res.writeHead(201, { location: `/v2/r/blobs/${digest}` }).end();
      } else if (req.method === 'DELETE') {
        res.writeHead(204).end();
      } else res.writeHead(405).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  const httpClient = new HttpClient({ connections: 2, retries: 3, userAgent: 'test' });
  const client = new RegistryClient({ apiHost: host, name: 'r', insecure: true, http: httpClient, credentials: undefined, label: `registry://${host}/r:t`, access: 'push' });
  return {
    stored,
    log,
    pusher: (chunkBytes: number) => new BlobPusher({ client, label: `registry://${host}/r:t`, name: 'r', retries: 3, chunkBytes }),
    close: async () => {
      await httpClient.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const blob = Buffer.from(Array.from({ length: 10_000 }, (_, i) => (i * 7) % 251));
const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}` as Digest;
const source = (start: number, end: number) => Readable.from([blob.subarray(start, end + 1)]);

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers) await c();
});

describe('BlobPusher', () => {
  test('a broken chunk resumes from the offset the registry reports, not from zero', async () => {
    const reg = await fakeRegistry({ breakPatch: { nth: 2, keep: 1500 } });
    closers.push(reg.close);
    const pusher = reg.pusher(4000);
    await pusher.upload(digest, blob.length, source);
    assert.deepEqual(reg.stored.get(digest), blob, 'the registry has the blob, byte for byte');
    assert.equal(pusher.stats.chunksResumed, 1);
    // Chunk 2 (4000-7999) broke after 1500 bytes: the registry said 0-5499; the resume starts at 5500.
    assert.deepEqual(
      reg.log.filter((l) => l.startsWith('PATCH') || l.startsWith('GET')),
      ['PATCH /v2/r/blobs/uploads/u1 0-3999', 'PATCH /v2/r/blobs/uploads/u1 4000-7999', 'GET /v2/r/blobs/uploads/u1', 'PATCH /v2/r/blobs/uploads/u1 5500-9499', 'PATCH /v2/r/blobs/uploads/u1 9500-9999'],
    );
    assert.ok(pusher.stats.bytesSent < 2 * blob.length, `not sent again from zero: ${pusher.stats.bytesSent} bytes`);
  });

  test('a whole PUT refused with 413 falls back to chunks', async () => {
    const reg = await fakeRegistry({ refuseWhole: true });
    closers.push(reg.close);
    await reg.pusher(1_000_000).upload(digest, blob.length, source);
    assert.deepEqual(reg.stored.get(digest), blob);
    assert.ok(reg.log.some((l) => l.startsWith('PATCH')), reg.log.join('\n'));
  });

  test("OCI-Chunk-Min-Length: chunks are at least the registry's minimum", async () => {
    const reg = await fakeRegistry({ minChunk: 6000 });
    closers.push(reg.close);
    await reg.pusher(1000).upload(digest, blob.length, source);
    assert.deepEqual(reg.stored.get(digest), blob);
    assert.deepEqual(
      reg.log.filter((l) => l.startsWith('PATCH')),
      ['PATCH /v2/r/blobs/uploads/u1 0-5999', 'PATCH /v2/r/blobs/uploads/u1 6000-9999'],
    );
  });

  test('exists: HEAD says whether the registry has the blob, and its size', async () => {
    const reg = await fakeRegistry({});
    closers.push(reg.close);
    const pusher = reg.pusher(100_000);
    assert.equal(await pusher.exists(digest), undefined);
    await pusher.upload(digest, blob.length, source);
    assert.equal(await pusher.exists(digest), blob.length);
  });

  test('exists: a HEAD for a blob larger than the JSON cap is read by its headers, never as a body', async () => {
    const server = http.createServer((req, res) => {
      res.writeHead(req.method === 'HEAD' ? 200 : 405, { 'content-length': String(100_000_000) });
      res.end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    const httpClient = new HttpClient({ connections: 1, retries: 0, userAgent: 'test' });
    closers.push(async () => {
      await httpClient.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });
    const client = new RegistryClient({ apiHost: host, name: 'r', insecure: true, http: httpClient, credentials: undefined, label: `registry://${host}/r:t`, access: 'push' });
    const pusher = new BlobPusher({ client, label: `registry://${host}/r:t`, name: 'r', retries: 0 });
    assert.equal(await pusher.exists(digest), 100_000_000);
  });

  test('mount: 201 is a mount; a 202 (an upload session instead) is refused and its session cancelled', async () => {
    const refusing = await fakeRegistry({});
    closers.push(refusing.close);
    assert.equal(await refusing.pusher(1000).mount(digest, 'other/repo'), false);
    assert.deepEqual(refusing.log, ['POST /v2/r/blobs/uploads/?mount&from=other/repo', 'DELETE /v2/r/blobs/uploads/u1']);
    const accepting = await fakeRegistry({ mountOk: true });
    closers.push(accepting.close);
    const pusher = accepting.pusher(1000);
    assert.equal(await pusher.mount(digest, 'other/repo'), true);
    assert.equal(pusher.stats.blobsMounted, 1);
    assert.deepEqual(accepting.log, ['POST /v2/r/blobs/uploads/?mount&from=other/repo']);
  });

  /** Feed `upload` the blob in pieces, as a download would, then end it. */
  async function feed(upload: { write(c: Uint8Array): Promise<void>; end(): void }): Promise<void> {
    for (let at = 0; at < blob.length; at += 1500) await upload.write(blob.subarray(at, at + 1500));
    upload.end();
  }

  test('streamUpload: the bytes given go up in one PUT as they come; the registry takes the blob', async () => {
    const reg = await fakeRegistry({});
    closers.push(reg.close);
    const pusher = reg.pusher(1000);
    const upload = pusher.streamUpload(digest, blob.length);
    await feed(upload);
    assert.equal(await upload.done, true);
    assert.deepEqual(reg.stored.get(digest), blob);
    assert.deepEqual(reg.log, ['POST /v2/r/blobs/uploads/', 'PUT /v2/r/blobs/uploads/u1'], 'one session, one PUT, though the chunk size is 1000');
    assert.equal(pusher.stats.bytesSent, blob.length);
  });

  test('streamUpload: refused (413, a minimum chunk, bytes that are not the blob) → done is false and the session is cancelled', async () => {
    for (const behaviour of [{ refuseWhole: true }, { minChunk: 6000 }] satisfies Behaviour[]) {
      const reg = await fakeRegistry(behaviour);
      closers.push(reg.close);
      const upload = reg.pusher(1_000_000).streamUpload(digest, blob.length);
      await feed(upload);
      assert.equal(await upload.done, false, JSON.stringify(behaviour));
      assert.equal(reg.stored.size, 0);
      assert.equal(reg.log.at(-1), 'DELETE /v2/r/blobs/uploads/u1', `${JSON.stringify(behaviour)}: ${reg.log.join(', ')}`);
    }
    const reg = await fakeRegistry({});
    closers.push(reg.close);
    const wrong = reg.pusher(1_000_000).streamUpload(`sha256:${'0'.repeat(64)}` as Digest, blob.length);
    await feed(wrong);
    assert.equal(await wrong.done, false, 'the registry checks the digest');
    assert.deepEqual(reg.log, ['POST /v2/r/blobs/uploads/', 'PUT /v2/r/blobs/uploads/u1', 'DELETE /v2/r/blobs/uploads/u1']);
  });

  test('streamUpload: abort mid-way (the fetch failed) → done is false, nothing stored, the session cancelled, writes no longer wait', async () => {
    const reg = await fakeRegistry({});
    closers.push(reg.close);
    const upload = reg.pusher(1_000_000).streamUpload(digest, blob.length);
    await upload.write(blob.subarray(0, 4000));
    upload.abort(new Error('the download broke'));
    assert.equal(await upload.done, false);
    await upload.write(blob.subarray(4000));
    assert.equal(reg.stored.size, 0);
    assert.ok(reg.log.includes('DELETE /v2/r/blobs/uploads/u1'), reg.log.join(', '));
  });
});
