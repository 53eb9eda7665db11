// The transport table drives endpoints, messages and help: an entry added to a copy of
// the table appears in every derived list, and the real table's messages are per role.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Forms } from '../../src/core/element.js';
import type { ImageInput, ImageOutput } from '../../src/core/pipeline/types.js';
import { destinationArea, openOutput, openSource } from '../../src/shell/endpoints.js';
import { aliasMap, availableSchemes, roleHelp, unavailableMessage } from '../../src/shell/transports/derive.js';
import { TRANSPORTS } from '../../src/shell/transports/index.js';

/** The source list messages give, derived from the table as the code derives it. */
const SOURCES = availableSchemes(TRANSPORTS, 'source').join(', ');
import { isPlanned, type Target, type Transport, type TransportSettings } from '../../src/shell/transports/types.js';

/** A scheme that exists only in this test; it records what open() was given. */
function fakeTransport(): { transport: Transport; opened: Array<{ target: Target; settings: TransportSettings }> } {
  const opened: Array<{ target: Target; settings: TransportSettings }> = [];
  const input: ImageInput = { description: 'fake', elements: async function* () {} };
  const output: ImageOutput = {
    description: 'fake',
    order: 'completion',
    wants: async () => Forms.tar,
    consume: async () => ({ destination: 'fake', layers: 0, layersSkipped: 0, bytes: 0, copiedAcrossDevices: 0 }),
  };
  const transport: Transport = {
    name: 'fakefmt',
    aliases: ['fakealias'],
    source: {
      usage: 'fakefmt://DIR[:TAG]',
      summary: 'a fake layout',
      options: ['depth'],
      async open(target, settings) {
        opened.push({ target, settings });
        return input;
      },
      async describe() {
        throw new Error('described');
      },
    },
    destination: {
      usage: 'fakefmt://DIR',
      summary: 'a fake layout',
      options: [],
      open(target, settings) {
        opened.push({ target, settings });
        return output;
      },
      area: (target) => `/area/${target.body}`,
    },
  };
  return { transport, opened };
}

test('an entry added to a copy of the table appears in help, lists and the alias map', () => {
  const { transport } = fakeTransport();
  const table = [...TRANSPORTS, transport];
  for (const role of ['source', 'destination'] as const) {
    assert.doesNotMatch(roleHelp(TRANSPORTS, role), /fakefmt/);
    const help = roleHelp(table, role);
    assert.match(help, /^- fakefmt:\/\/DIR(\[:TAG\])?: a fake layout; fakealias:\/\/ is the same/m);
    assert.ok(availableSchemes(table, role).includes('fakefmt://'));
    assert.match(unavailableMessage(table, role, 'nope', 'nope://x') ?? '', new RegExp(`unknown ${role} scheme "nope://" in nope://x; ${role}s: .*fakefmt://`));
  }
  assert.match(roleHelp(table, 'source'), /options \?depth/);
  assert.equal(aliasMap(table)['fakealias'], 'fakefmt');
});

test('an added entry opens through the endpoints, by name and alias, with the settings passed whole', async () => {
  const { transport, opened } = fakeTransport();
  const table = [...TRANSPORTS, transport];
  const settings = { parallel: 3, somethingNew: 'zstd' } as TransportSettings;
  const source = await openSource('FakeAlias://lay/out:v1?depth=2', settings, table);
  assert.equal(source.input.description, 'fake');
  await assert.rejects(source.describe?.() ?? Promise.resolve(), /described/);
  assert.equal((await openOutput('fakefmt:store', settings, table)).description, 'fake');
  assert.deepEqual(
    opened.map((o) => ({ scheme: o.target.scheme, body: o.target.body, options: o.target.options, uri: o.target.uri })),
    [
      { scheme: 'fakefmt', body: 'lay/out:v1', options: { depth: 2 }, uri: 'FakeAlias://lay/out:v1?depth=2' },
      { scheme: 'fakefmt', body: 'store', options: {}, uri: 'fakefmt:store' },
    ],
  );
  assert.ok(opened.every((o) => o.settings === settings), 'open() receives the settings object itself');
  assert.equal(destinationArea('fakefmt://here', table), '/area/here');
  await assert.rejects(openSource('fakefmt://x', {}), /unknown source scheme "fakefmt:\/\/"/);
});

test('unknown schemes list every available source, or every available destination, of the table', async () => {
  const sources = TRANSPORTS.filter((t) => t.source && !isPlanned(t.source)).map((t) => `${t.name}://`);
  const destinations = TRANSPORTS.filter((t) => t.destination && !isPlanned(t.destination)).map((t) => `${t.name}://`);
  assert.ok(sources.length >= 2 && destinations.length >= 2);
  await assert.rejects(openSource('foo://x'), (e: Error) => {
    assert.equal(e.message, `unknown source scheme "foo://" in foo://x; sources: ${sources.join(', ')}`);
    return true;
  });
  await assert.rejects(() => openOutput('bar://y'), (e: Error) => {
    assert.equal(e.message, `unknown destination scheme "bar://" in bar://y; destinations: ${destinations.join(', ')}`);
    return true;
  });
});

test('a planned or one-role scheme gets a message for the role it was asked in', async () => {
  for (const t of TRANSPORTS) {
    const asSource = unavailableMessage(TRANSPORTS, 'source', t.name, `${t.name}://x`);
    const asDestination = unavailableMessage(TRANSPORTS, 'destination', t.name, `${t.name}://x`);
    // A message about the destination role never answers a source, and the reverse.
    if (asSource !== undefined) assert.doesNotMatch(asSource, /output|as a destination/, `${t.name}:// as a source: ${asSource}`);
    if (asDestination !== undefined) assert.doesNotMatch(asDestination, /as a source|not a destination/, `${t.name}:// as a destination: ${asDestination}`);
  }
  await assert.rejects(openSource('oci://x'), new RegExp(`^OccystrapError: oci:// \\(an OCI runtime bundle\\) is only a destination, not a source; sources: ${SOURCES}$`));
  await assert.rejects(openSource('mounts://x'), new RegExp(`^OccystrapError: mounts:// \\(overlay mounts\\) is only a destination, not a source; sources: ${SOURCES}$`));
  await assert.rejects(() => openOutput('quay://x'), /quay:\/\/ is not available in this version yet \(it is planned\)/);
  // A scheme with only a destination role (the table without dir://'s source role).
  const destinationOnly = TRANSPORTS.map((t) => (t.name === 'dir' ? { name: t.name, what: 'a layer store', aliases: t.aliases, ...(t.destination ? { destination: t.destination } : {}) } : t));
  assert.match(unavailableMessage(destinationOnly, 'source', 'dir', 'dir://x') ?? '', /^dir:\/\/ \(a layer store\) is only a destination, not a source; sources: tar:\/\/, registry:\/\/, ocidir:\/\/, docker:\/\/$/);
  assert.equal(unavailableMessage(TRANSPORTS, 'source', 'dir', 'dir://x'), undefined, 'dir:// is a source');
});

test('aliases come from the table: file:// is tar://, directory:// is dir://', () => {
  assert.deepEqual(aliasMap(TRANSPORTS), { file: 'tar', directory: 'dir' });
  assert.equal(destinationArea('file:///tmp/a/x.tar'), '/tmp/a');
  assert.equal(destinationArea('Directory:///tmp/store'), '/tmp/store');
});

test('usage forms fit one help line: no spaces, at most 70 characters', () => {
  for (const t of TRANSPORTS) {
    for (const role of [t.source, t.destination]) {
      if (role === undefined || isPlanned(role)) continue;
      assert.doesNotMatch(role.usage, /\s/, role.usage);
      assert.ok(role.usage.length <= 70, role.usage);
      assert.ok(role.usage.startsWith(`${t.name}://`), role.usage);
    }
  }
});

test('the table is consistent: names and aliases unique, lowercase, valid schemes; every entry has a role', () => {
  const spellings = TRANSPORTS.flatMap((t) => [t.name, ...t.aliases]);
  assert.equal(new Set(spellings).size, spellings.length, `a scheme or alias appears twice: ${spellings.join(', ')}`);
  for (const s of spellings) assert.match(s, /^[a-z][a-z0-9+.-]*$/, s);
  for (const t of TRANSPORTS) assert.ok(t.source !== undefined || t.destination !== undefined, `${t.name}:// has no role`);
});
