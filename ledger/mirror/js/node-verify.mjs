#!/usr/bin/env node
// The browser verifier run by Node on a tlog-tiles directory, for tests and benchmarks:
//   node ledger/mirror/js/node-verify.mjs DIRECTORY (--log-key VKEY | --policy FILE)
//   node ledger/mirror/js/node-verify.mjs DIRECTORY --log-key VKEY --statement ID \
//     --statement-index N --indexes I,J,...      (verify one statement, statement.js)
// prints one JSON object: {"valid": true, ...} or {"valid": false, "error": {...}}, and
// exits 0 (valid), 1 (invalid) or 2 (unreadable), as ledger-verify does.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LedgerError } from './errors.js';
import { parsePolicy, trustFromVkey } from './note.js';
import { verifyStatement } from './statement.js';
import { verifyLog } from './verify.js';

const args = process.argv.slice(2);
const dir = args[0];
const opt = (name) => { const i = args.indexOf(name); return i < 0 ? null : args[i + 1]; };
async function fetchFile(path) {
  try {
    return new Uint8Array(await readFile(join(dir, path)));
  } catch (e) {
    throw new LedgerError(`${path}: no such file`, { code: e.code === 'ENOENT' ? 'not_found' : 'unreadable', field: path, exit: 2 });
  }
}
try {
  const trust = opt('--policy') ? parsePolicy(await readFile(opt('--policy'), 'utf8')) : trustFromVkey(opt('--log-key'));
  const t = performance.now();
  if (opt('--statement')) {
    const indexes = (opt('--indexes') || '').split(',').filter((x) => x).map(Number);
    const r = await verifyStatement(fetchFile, trust, opt('--statement'), Number(opt('--statement-index')), indexes);
    console.log(JSON.stringify({ valid: true, exit_code: 0, ...r, elapsed_s: (performance.now() - t) / 1000 }));
    process.exit(0);
  }
  const r = await verifyLog(fetchFile, trust);
  const elapsed = (performance.now() - t) / 1000;
  console.log(JSON.stringify({ valid: true, exit_code: 0, size: r.size, root: r.root, signatures_checked: r.signaturesChecked, tiles_checked: r.tilesChecked, elapsed_s: elapsed, tallies: r.tallies }));
  process.exit(0);
} catch (e) {
  if (!(e instanceof LedgerError)) throw e;
  console.log(JSON.stringify({ valid: false, exit_code: e.exit, error: { text: e.text, code: e.code, index: e.index, field: e.field } }));
  process.exit(e.exit);
}
