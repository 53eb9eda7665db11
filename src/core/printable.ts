/**
 * Text for the terminal. Names, paths and labels come from the input, and a name with an
 * ESC, a carriage return or a C1 control can recolour, rewrite or hide what the user
 * sees; every print site passes input-derived text through these functions.
 *
 * @module
 */

/**
 * Characters that must not reach a terminal raw: C0 controls, DEL, C1 controls, the
 * Unicode line and paragraph separators, and the bidirectional overrides (which can make
 * a name display as another).
 */
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
const UNPRINTABLE_BUT_NEWLINE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
/** What JSON.stringify leaves raw but a terminal interprets. */
const JSON_UNSAFE = /[\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

function escapeChar(c: string): string {
  const named = NAMED[c];
  if (named !== undefined) return named;
  const code = c.charCodeAt(0);
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`;
}

/** One line of text with every control character shown as an escape (`\n`, `\x1b`, `\u{202e}`). */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, escapeChar);
}

/** Like {@link printable}, but line breaks stay line breaks (for multi-line reports). */
export function printableLines(text: string): string {
  return text.replace(UNPRINTABLE_BUT_NEWLINE, escapeChar);
}

/**
 * JSON text safe for a terminal: the characters JSON.stringify leaves raw (DEL, C1, the
 * separators, the bidi controls) become `\uXXXX` escapes. The value it denotes is unchanged.
 */
export function printableJson(jsonText: string): string {
  return jsonText.replace(JSON_UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
