// Records against the spec's vectors (tests/vectors/records): the examples parse and
// verify, and every named mutation fails at the stage and with the error class given.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { b64decode, hexEncode } from '../../ledger/mirror/js/encoding.js';
import { LedgerError } from '../../ledger/mirror/js/errors.js';
import { checkSignatures, parseRecord } from '../../ledger/mirror/js/records.js';
import { parseEntry } from '../../ledger/mirror/js/entry.js';

const dir = new URL('../vectors/records/', import.meta.url);
const mutations = JSON.parse(readFileSync(new URL('mutations.json', dir), 'utf8'));
const examples = JSON.parse(readFileSync(new URL('examples.json', dir), 'utf8'));
const CLASS = { FormatError: 'format', TooLargeError: 'format', SignatureError: 'signature' };

async function stage(data) {
  const text = new TextDecoder().decode(data);
  try {
    if (text.startsWith('endorsement-ledger/v1 entry\n')) {
      const e = parseEntry(data);
      await checkSignatures(e.record);
    } else {
      await checkSignatures(parseRecord(data));
    }
    return 'accept';
  } catch (e) {
    if (!(e instanceof LedgerError)) throw e;
    return ['bad_signature', 'wrong_signer'].includes(e.code) ? 'signature' : 'format';
  }
}

test('every named mutation is rejected as the spec says', async () => {
  for (const m of mutations) {
    assert.equal(await stage(b64decode(m.data_b64)), CLASS[m.error], `${m.name}: ${m.description}`);
  }
});

test('the examples parse, verify and have their record ids; the entries chain', async () => {
  for (const r of Object.values(examples.records)) {
    const data = new Uint8Array(readFileSync(new URL(r.file, dir)));
    assert.equal(await stage(data), 'accept', r.file);
    const rec = parseRecord(data);
    assert.equal(hexEncode(rec.recordId), r.record_id_hex, r.file);
    assert.equal(rec.body.type, r.type);
  }
  for (const e of examples.log) {
    const entry = parseEntry(b64decode(e.entry_b64));
    assert.equal(entry.index, e.index);
    assert.equal(entry.time, e.time_ms);
  }
});
