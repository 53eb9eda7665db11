/**
 * What is derived from a transport table: the alias map, the messages for a scheme that is
 * unknown, planned or not of the asked role, and the help paragraphs. Each takes the table
 * as a parameter, so tests can add an entry to a copy and see it everywhere.
 *
 * @module
 */
import { type DestinationRole, isPlanned, type PlannedRole, type RoleHelp, type SourceRole, type Transport, type TransportTable } from './types.js';

export type RoleName = 'source' | 'destination';

const OTHER: Record<RoleName, RoleName> = { source: 'destination', destination: 'source' };

export function roleOf(transport: Transport, role: 'source'): SourceRole | PlannedRole | undefined;
export function roleOf(transport: Transport, role: 'destination'): DestinationRole | PlannedRole | undefined;
export function roleOf(transport: Transport, role: RoleName): SourceRole | DestinationRole | PlannedRole | undefined;
export function roleOf(transport: Transport, role: RoleName): SourceRole | DestinationRole | PlannedRole | undefined {
  return role === 'source' ? transport.source : transport.destination;
}

/** Alias → scheme, for parseUri. */
export function aliasMap(table: TransportTable): Readonly<Record<string, string>> {
  return Object.fromEntries(table.flatMap((t) => t.aliases.map((alias) => [alias, t.name])));
}

/** The schemes available in the role, as `name://`, in table order. */
export function availableSchemes(table: TransportTable, role: RoleName): string[] {
  return schemesWhere(table, role, (r) => !isPlanned(r));
}

/** The schemes planned in the role, as `name://`. */
export function plannedSchemes(table: TransportTable, role: RoleName): string[] {
  return schemesWhere(table, role, isPlanned);
}

function schemesWhere(table: TransportTable, role: RoleName, keep: (r: SourceRole | DestinationRole | PlannedRole) => boolean): string[] {
  return table.filter((t) => {
    const r = roleOf(t, role);
    return r !== undefined && keep(r);
  }).map((t) => `${t.name}://`);
}

/**
 * The one-line message for a scheme that cannot be used in the role: unknown (with the
 * list of what is), planned (the entry's own message), or only usable in the other role.
 * Undefined when the scheme is available in the role.
 */
export function unavailableMessage(table: TransportTable, role: RoleName, scheme: string, uri: string): string | undefined {
  const transport = table.find((t) => t.name === scheme);
  const list = `${role}s: ${availableSchemes(table, role).join(', ')}`;
  if (!transport) return `unknown ${role} scheme "${scheme}://" in ${uri}; ${list}`;
  const wanted = roleOf(transport, role);
  if (wanted !== undefined) return isPlanned(wanted) ? wanted.planned : undefined;
  const other = roleOf(transport, OTHER[role]);
  const what = transport.what ? ` (${transport.what})` : '';
  const otherPlanned = other !== undefined && isPlanned(other) ? ' (planned)' : '';
  return `${scheme}://${what} is only a ${OTHER[role]}${otherPlanned}, not a ${role}; ${list}`;
}

function optionsNote(help: RoleHelp): string {
  const mentioned = `${help.usage} ${help.summary}`;
  const rest = help.options.filter((o) => !mentioned.includes(`?${o}`));
  return rest.length === 0 ? '' : `; options ${rest.map((o) => `?${o}`).join(', ')}`;
}

/** One help line per available scheme of the role: usage, summary, aliases, other options. */
export function roleHelpLines(table: TransportTable, role: RoleName): string[] {
  const lines: string[] = [];
  for (const t of table) {
    const r = roleOf(t, role);
    if (r === undefined || isPlanned(r)) continue;
    const aliases = t.aliases.length === 0 ? '' : `; ${t.aliases.map((a) => `${a}://`).join(', ')} is the same`;
    lines.push(`${r.usage}: ${r.summary}${aliases}${optionsNote(r)}.`);
  }
  return lines;
}

/**
 * Help paragraphs for clipanion's markdown-ish `details`: a heading, one list item per
 * scheme, then the planned ones. Items are list entries so clipanion wraps each one on
 * its own and never cuts a usage form (it has no spaces and stays under 78 columns).
 */
export function roleHelp(table: TransportTable, role: RoleName): string {
  const heading = role === 'source' ? 'Sources' : 'Destinations';
  const items = roleHelpLines(table, role).map((l) => `- ${l}`);
  const planned = plannedSchemes(table, role);
  if (planned.length > 0) items.push(`- Planned, not yet available: ${planned.join(', ')}.`);
  return `${heading}:\n\n${items.join('\n\n')}`;
}

/** Available sources that can give their manifest and config without layers (`describe`), and the others. */
export function sourcesByDescribe(table: TransportTable): { readonly described: string[]; readonly readThrough: string[] } {
  const described: string[] = [];
  const readThrough: string[] = [];
  for (const t of table) {
    if (t.source === undefined || isPlanned(t.source)) continue;
    (t.source.describe ? described : readThrough).push(`${t.name}://`);
  }
  return { described, readThrough };
}
