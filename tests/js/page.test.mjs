// What the verifier's pages share: reading the reader's trust (a vkey or a policy).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { trustFrom } from '../../ledger/mirror/js/page.js';

const V = JSON.parse(readFileSync(new URL('../vectors/note/vectors.json', import.meta.url), 'utf8'));
const log = V.vkeys.find((v) => v.name === 'log').vkey;
const witness = V.vkeys.find((v) => v.name === 'witness').vkey;

test('a vkey, or a policy with its quorum', () => {
  const a = trustFrom(`  ${log}\n`);
  assert.equal(a.logs.length, 1);
  assert.equal(a.quorum, null);
  const b = trustFrom(`log ${log}\nwitness w1 ${witness}\nquorum w1`);
  assert.equal(b.quorum, 'w1');
  assert.equal(b.witnesses[0].name, 'w1');
  assert.throws(() => trustFrom('not a key'), /vkey/);
});
