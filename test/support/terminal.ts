/**
 * A terminal screen for tests of the live progress block: it applies what the reporter
 * writes (`\r`, `\n`, `ESC[nA` up n lines, `ESC[J` clear to the end of the screen) and
 * refuses any other escape sequence, so a test sees the lines a user would see.
 */
import assert from 'node:assert/strict';

export class Screen {
  rows: string[] = [''];
  row = 0;
  writes = 0;
  /** Lines as they were drawn, every time one was completed (a history of the screen). */
  readonly drawn: string[] = [];
  readonly isTTY = true;
  constructor(readonly columns: number) {}

  write(text: string): boolean {
    this.writes++;
    for (const m of text.matchAll(/\r|\n|\x1b\[(\d+)A|\x1b\[J|[^\r\n\x1b]+|\x1b/g)) {
      const t = m[0];
      if (t === '\r') continue;
      if (t === '\n') {
        this.drawn.push(this.rows[this.row] ?? '');
        this.row++;
        if (this.rows.length <= this.row) this.rows.push('');
      } else if (m[1] !== undefined) {
        this.row = Math.max(0, this.row - Number(m[1]));
      } else if (t === '\x1b[J') {
        this.rows.length = this.row + 1;
        this.rows[this.row] = '';
      } else {
        assert.ok(!t.includes('\x1b'), `an escape sequence the reporter does not write: ${JSON.stringify(text.slice(m.index, m.index + 8))}`);
        this.rows[this.row] = (this.rows[this.row] ?? '') + t;
      }
    }
    return true;
  }

  /** The lines above the cursor: what a user sees now. */
  get lines(): string[] {
    return this.rows.slice(0, this.row);
  }
}
