// Signed notes, vkeys and cosignatures against tests/vectors/note/vectors.json.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { b64decode } from '../../ledger/mirror/js/encoding.js';
import { LedgerError } from '../../ledger/mirror/js/errors.js';
import { openNote, parseVkey } from '../../ledger/mirror/js/note.js';

const V = JSON.parse(readFileSync(new URL('../vectors/note/vectors.json', import.meta.url), 'utf8'));
const CODES = {
  FormatError: 'malformed', TooLargeError: 'too_large', SignatureError: 'bad_signature',
  UnknownKeyError: 'unknown_key',
};

test('every vkey vector', () => {
  for (const v of V.vkeys) {
    let got = 'accept';
    try { parseVkey(v.vkey); } catch (e) { if (!(e instanceof LedgerError)) throw e; got = e.code; }
    assert.equal(got, v.expected === 'accept' ? 'accept' : CODES[v.expected], v.name);
  }
});

test('every note vector: verdict and the signatures verified', async () => {
  const keys = Object.fromEntries(V.vkeys.filter((v) => v.expected === 'accept').map((v) => [v.name, parseVkey(v.vkey)]));
  for (const v of V.notes) {
    const data = v.note_b64 !== undefined ? b64decode(v.note_b64) : new TextEncoder().encode(v.note);
    let got = 'accept';
    let verified = null;
    try {
      const note = await openNote(data, v.vkeys.map((n) => keys[n]));
      verified = note.verified.map((s) => s.name);
    } catch (e) {
      if (!(e instanceof LedgerError)) throw e;
      got = e.code;
    }
    assert.equal(got, v.expected === 'accept' ? 'accept' : CODES[v.expected], `${v.name}: ${v.description}`);
    if (got === 'accept' && v.verified) assert.deepEqual(verified, v.verified, v.name);
  }
});
