// The library's documented examples must run and print what they say.
//
// Every ```ts block inside an `@example` JSDoc comment of the pipeline combinators is
// extracted, transpiled, pointed at the built `occystrap/core`, imported, and its closing
// `// name: <json>` comment turned into an assertion. Examples without such a line only
// show usage (they reference values the reader supplies) and are skipped.
//
// In the docs (DOCS), a ```ts block runs when its first line is `// example: runs` (and
// then must close with a `// name: <json>` line); a block without that marker is a usage
// or type sketch (interfaces, signatures, values the reader supplies) and is not run.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';

// dist/test/unit/doc-examples.test.js → repo root is three levels up.
const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..', '..', '..');
const coreUrl = pathToFileURL(path.join(repoRoot, 'dist', 'src', 'core', 'index.js')).href;

const SOURCES = ['buffer', 'parallel-map', 'reorder', 'hand-over', 'compose'].map((f) => `src/core/pipeline/${f}.ts`);
const DOCS = ['docs/library.md', 'docs/architecture.md'];

interface Example {
  readonly where: string;
  readonly code: string;
}

interface Runnable extends Example {
  readonly name: string;
  readonly expected: unknown;
}

/** ```ts blocks inside `@example` sections of JSDoc comments, with ` * ` prefixes removed. */
function jsdocExamples(file: string, source: string): Example[] {
  const out: Example[] = [];
  for (const comment of source.matchAll(/\/\*\*([\s\S]*?)\*\//g)) {
    const lines = (comment[1] as string).split('\n').map((l) => l.replace(/^\s*\* ?/, ''));
    const commentLine = source.slice(0, comment.index).split('\n').length;
    let inExample = false;
    let block: string[] | undefined;
    let blockStart = 0;
    lines.forEach((line, i) => {
      if (block) {
        if (/^```\s*$/.test(line)) {
          out.push({ where: `${file}:${commentLine + blockStart}`, code: block.join('\n') });
          block = undefined;
        } else block.push(line);
        return;
      }
      if (/^@\w+/.test(line)) inExample = line.startsWith('@example');
      if (inExample && /^```(ts|typescript)\s*$/.test(line)) {
        block = [];
        blockStart = i;
      }
    });
  }
  return out;
}

/** Every ```ts block of a markdown file; `runs` when its first line is `// example: runs`. */
function markdownBlocks(file: string, source: string): (Example & { readonly runs: boolean })[] {
  const out: (Example & { readonly runs: boolean })[] = [];
  for (const m of source.matchAll(/^```(?:ts|typescript)[ \t]*\n([\s\S]*?)^```[ \t]*$/gm)) {
    const code = m[1] as string;
    const runs = /^\/\/\s*example:\s*runs\s*$/.test(code.split('\n')[0] ?? '');
    out.push({ where: `${file}:${source.slice(0, m.index).split('\n').length}`, code, runs });
  }
  return out;
}

/** ```ts blocks of a markdown file whose first line is `// example: runs`. */
function markdownExamples(file: string, source: string): Example[] {
  return markdownBlocks(file, source)
    .filter((b) => b.runs)
    .map(({ where, code }) => ({ where, code }));
}

/** The syntax errors of a block read as TypeScript (types are not checked). */
function syntaxErrors(example: Example): string[] {
  const { diagnostics = [] } = ts.transpileModule(example.code, { fileName: 'sketch.ts', reportDiagnostics: true, compilerOptions: { target: ts.ScriptTarget.ES2022 } });
  return diagnostics.map((d) => {
    const line = example.code.slice(0, d.start ?? 0).split('\n').length;
    return `${example.where} (line ${line} of the block): ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
  });
}

/** The last `// name: <json>` comment line, or undefined for usage-only examples. */
function expectation(example: Example): Runnable | undefined {
  const lines = example.code.trimEnd().split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    const m = /^\s*\/\/\s*([A-Za-z_$][\w$]*)\s*:\s*(.+?)\s*$/.exec(lines[i] as string);
    if (!m) continue;
    if (m[1] === 'example') continue;
    let expected: unknown;
    try {
      expected = JSON.parse(m[2] as string);
    } catch {
      continue; // prose, not a value
    }
    return { ...example, name: m[1] as string, expected };
  }
  return undefined;
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'occystrap-doc-examples-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
let counter = 0;

async function run(example: Runnable): Promise<unknown> {
  const js = ts.transpileModule(`${example.code}\nexport const __result = ${example.name};\n`, {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
    fileName: 'example.ts',
    reportDiagnostics: false,
  }).outputText;
  const linked = js.replace(/(from\s*|import\s*\(\s*)(['"])occystrap\/core\2/g, (_m, pre: string) => `${pre}${JSON.stringify(coreUrl)}`);
  assert.ok(!/['"]occystrap\/core['"]/.test(linked), `${example.where}: import of occystrap/core was not rewritten`);
  const file = path.join(tmp, `example-${counter++}.mjs`);
  fs.writeFileSync(file, linked);
  const mod = (await import(pathToFileURL(file).href)) as { __result: unknown };
  return mod.__result;
}

function collect(): { runnable: Runnable[]; skipped: Example[]; unmarked: Example[] } {
  const runnable: Runnable[] = [];
  const skipped: Example[] = [];
  const unmarked: Example[] = [];
  for (const rel of SOURCES) {
    const file = path.join(repoRoot, rel);
    if (!fs.existsSync(file)) continue;
    for (const ex of jsdocExamples(rel, fs.readFileSync(file, 'utf8'))) {
      const r = expectation(ex);
      if (r) runnable.push(r);
      else skipped.push(ex);
    }
  }
  for (const rel of DOCS) {
    const doc = path.join(repoRoot, rel);
    for (const ex of markdownExamples(rel, fs.readFileSync(doc, 'utf8'))) {
      const r = expectation(ex);
      if (r) runnable.push(r);
      else unmarked.push(ex);
    }
  }
  return { runnable, skipped, unmarked };
}

const { runnable, skipped, unmarked } = collect();

test(`${DOCS.join(', ')}: blocks marked "// example: runs" say what they produce`, () => {
  assert.deepEqual(
    unmarked.map((ex) => ex.where),
    [],
    'each needs a closing "// name: <json>" line',
  );
});

test('the extractor finds the source examples (not vacuous)', () => {
  const fromSources = runnable.filter((r) => r.where.startsWith('src/'));
  assert.ok(fromSources.length >= 3, `only ${fromSources.length} runnable source examples: ${fromSources.map((r) => r.where).join(', ')}`);
  for (const name of ['buffer', 'parallel-map', 'reorder']) {
    assert.ok(
      fromSources.some((r) => r.where.startsWith(`src/core/pipeline/${name}.ts:`)),
      `no runnable example in src/core/pipeline/${name}.ts`,
    );
  }
  // Each doc has examples that run.
  for (const rel of DOCS) assert.ok(runnable.some((r) => r.where.startsWith(`${rel}:`)), `no runnable example in ${rel}`);
  // Usage-only examples are recognised as such, not silently run.
  for (const ex of skipped) assert.equal(expectation(ex), undefined);
});

test(`${DOCS.join(', ')}: the blocks that do not run (usage and type sketches) are still TypeScript`, () => {
  const sketches = DOCS.flatMap((rel) => markdownBlocks(rel, fs.readFileSync(path.join(repoRoot, rel), 'utf8')).filter((b) => !b.runs));
  assert.ok(sketches.some((b) => b.where.startsWith('docs/architecture.md:')), 'no sketch found in docs/architecture.md');
  assert.deepEqual(sketches.flatMap(syntaxErrors), []);
});

/**
 * The type errors of the runnable examples, compiled as written with `strict` against the
 * built package's declarations (`occystrap` and `occystrap/core` mapped to dist/src).
 */
function typeErrors(examples: readonly Example[]): string[] {
  const dir = fs.mkdtempSync(path.join(tmp, 'typecheck-'));
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
  const files = examples.map((ex, i) => {
    const file = path.join(dir, `example-${i}.ts`);
    // Each example is a module of its own (some declare the same names).
    fs.writeFileSync(file, `${ex.code}\nexport {};\n`);
    return { file, ex };
  });
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    lib: ['lib.es2022.d.ts', 'lib.esnext.disposable.d.ts'],
    types: ['node'],
    typeRoots: [path.join(repoRoot, 'node_modules', '@types')],
    skipLibCheck: true,
    paths: {
      'occystrap/core': [path.join(repoRoot, 'dist', 'src', 'core', 'index.d.ts')],
      occystrap: [path.join(repoRoot, 'dist', 'src', 'index.d.ts')],
    },
  };
  const program = ts.createProgram(files.map((f) => f.file), options);
  const byFile = new Map(files.map((f) => [f.file, f.ex]));
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const ex = d.file ? byFile.get(d.file.fileName) : undefined;
    const line = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start).line + 1 : 0;
    return `${ex?.where ?? d.file?.fileName ?? 'options'} (line ${line} of the block): ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
  });
}

test('the runnable examples type-check as written with strict (against the built declarations)', () => {
  assert.deepEqual(typeErrors(runnable), []);
});

test('typeErrors catches an example that does not type-check (not vacuous)', () => {
  const errors = typeErrors([
    { where: 'bad.md:1', code: "import { buffer } from 'occystrap/core';\nconst n: number = buffer;\nconst seen = [];\nseen.push(1);" },
  ]);
  assert.ok(errors.some((e) => /^bad\.md:1 \(line 2 of the block\): Type .* is not assignable to type 'number'/.test(e)), errors.join('\n'));
});

let executed = 0;
for (const example of runnable) {
  test(`doc example ${example.where} produces ${example.name}: ${JSON.stringify(example.expected)}`, async () => {
    const result = await run(example);
    executed++;
    assert.deepStrictEqual(result, example.expected);
  });
}

test('at least 3 examples were executed', () => {
  assert.ok(executed >= 3, `only ${executed} examples executed`);
});

test('extractor self-check: prefixes are stripped and the expectation is parsed', () => {
  const src = ['/**', ' * Doc.', ' *', ' * @example', ' * ```ts', ' * const out = [1, 2];', ' * // out: [1, 2]', ' * ```', ' */'].join('\n');
  const [ex] = jsdocExamples('x.ts', src);
  assert.ok(ex);
  assert.equal(ex.code, 'const out = [1, 2];\n// out: [1, 2]');
  assert.equal(ex.where, 'x.ts:5');
  assert.deepEqual(expectation(ex), { ...ex, name: 'out', expected: [1, 2] });
  // Code fences outside @example are not examples.
  assert.deepEqual(jsdocExamples('y.ts', ['/**', ' * ```ts', ' * const a = 1;', ' * ```', ' */'].join('\n')), []);
  // Markdown blocks need the marker.
  const md = ['```ts', '// example: runs', 'const a = 1;', '// a: 1', '```', '', '```ts', 'const b = 2;', '```'].join('\n');
  const mdEx = markdownExamples('d.md', md);
  assert.equal(mdEx.length, 1);
  assert.deepEqual(markdownBlocks('d.md', md).map((b) => [b.where, b.runs]), [['d.md:1', true], ['d.md:7', false]]);
  // A sketch with a syntax error is caught.
  assert.equal(syntaxErrors({ where: 'd.md:1', code: 'type T = Stored { a };' }).length > 0, true);
  assert.deepEqual(expectation(mdEx[0]!)?.expected, 1);
});
