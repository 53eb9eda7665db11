/**
 * The core/shell boundary, checked mechanically: src/core imports only its own modules
 * and the pure packages listed here, and type-checks with no Node types at all
 * (tsconfig.core.json: the web-platform globals of src/core/web-platform.d.ts and
 * nothing else), so `process`, `Buffer` or a `node:` import there fails.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import ts from 'typescript';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const coreDir = path.join(repoRoot, 'src', 'core');
const tsc = path.join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc');
const run = promisify(execFile);

/** Packages the core may import: pure computation, no I/O. */
const CORE_PACKAGES = ['fp-ts', 'io-ts', 're2js'];

function coreSources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return coreSources(p);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

const packageOf = (specifier: string) => specifier.split('/').slice(0, specifier.startsWith('@') ? 2 : 1).join('/');

async function typeCheck(project: string): Promise<{ ok: boolean; output: string }> {
  try {
    const { stdout } = await run(process.execPath, [tsc, '-p', project], { cwd: repoRoot });
    return { ok: true, output: stdout };
  } catch (e) {
    return { ok: false, output: String((e as { stdout?: string }).stdout ?? e) };
  }
}

describe('the core/shell boundary', () => {
  test('src/core imports only relative modules and the pure packages', () => {
    const files = coreSources(coreDir);
    assert.ok(files.length > 30, `only ${files.length} core sources found under ${coreDir}`);
    const offending: string[] = [];
    for (const file of files) {
      const { importedFiles } = ts.preProcessFile(fs.readFileSync(file, 'utf8'), true, true);
      for (const { fileName } of importedFiles) {
        if (fileName.startsWith('./') || fileName.startsWith('../')) {
          const target = path.resolve(path.dirname(file), fileName);
          if (!target.startsWith(coreDir + path.sep)) offending.push(`${path.relative(repoRoot, file)} imports ${fileName}, outside src/core`);
        } else if (!CORE_PACKAGES.includes(packageOf(fileName))) {
          offending.push(`${path.relative(repoRoot, file)} imports ${fileName}`);
        }
      }
    }
    assert.deepEqual(offending, []);
  });

  test('src/core type-checks without Node types (tsconfig.core.json)', async () => {
    const { ok, output } = await typeCheck(path.join(repoRoot, 'tsconfig.core.json'));
    assert.ok(ok, output);
  });

  test('the same check refuses node:fs, process and Buffer', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'core-boundary-'));
    try {
      fs.writeFileSync(path.join(dir, 'probe.ts'), 'import * as fs from "node:fs";\nexport const a = fs.existsSync("x");\nexport const b = process.argv;\nexport const c = Buffer.from("x");\nexport const d = new TextEncoder().encode("allowed");\n');
      const config = {
        extends: path.join(repoRoot, 'tsconfig.core.json'),
        compilerOptions: { rootDir: dir },
        include: [path.join(dir, 'probe.ts'), path.join(coreDir, 'web-platform.d.ts')],
        exclude: [],
      };
      fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify(config));
      const { ok, output } = await typeCheck(path.join(dir, 'tsconfig.json'));
      assert.ok(!ok, 'the probe type-checked');
      assert.match(output, /probe\.ts\(1,\d+\): error TS2307: Cannot find module 'node:fs'/);
      assert.match(output, /probe\.ts\(3,\d+\): error TS2591: Cannot find name 'process'/);
      assert.match(output, /probe\.ts\(4,\d+\): error TS2591: Cannot find name 'Buffer'/);
      assert.doesNotMatch(output, /probe\.ts\(5,/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
