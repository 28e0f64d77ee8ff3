// The shared Unicode cases (tests/vectors/unicode/cases.json) in JavaScript: the verdicts
// follow the spec's pinned Unicode 14.0.0, not this engine's Unicode.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseRecord } from '../../ledger/mirror/js/records.js';
import { LedgerError } from '../../ledger/mirror/js/errors.js';

const cases = JSON.parse(readFileSync(new URL('../vectors/unicode/cases.json', import.meta.url), 'utf8'));
const b64 = (s) => Buffer.from(s, 'utf8').toString('base64');
const KEY = Buffer.alloc(32).toString('base64');
const SIG = Buffer.alloc(64).toString('base64');

function record(field, text) {
  const body = field === 'name'
    ? `endorsement-ledger/v1 register\nlog ledger.example.org/u\nsigned_at 1\nkey ${KEY}\nname ${text}\nkind other\n`
    : `endorsement-ledger/v1 statement\nlog ledger.example.org/u\nsigned_at 1\ntitle T\nauthor ${'00'.repeat(32)}\ntext ${b64(text)}\n`;
  return new TextEncoder().encode(`${body}\nsig ${KEY} ${SIG}\n`);
}

test('every shared Unicode case', () => {
  for (const c of cases) {
    let got = 'accept';
    try { parseRecord(record(c.field, c.text)); } catch (e) {
      if (!(e instanceof LedgerError)) throw e;
      got = e.message;
    }
    if (c.expected === 'accept') assert.equal(got, 'accept', c.name);
    else assert.ok(got !== 'accept' && got.includes(c.reason), `${c.name}: ${got}`);
  }
});
