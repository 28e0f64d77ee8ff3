// The acceptance rule in JavaScript against the shared edge-case vectors
// (tests/vectors/ed25519/vectors.json), with each backend of step 7.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as ed from '../../ledger/mirror/js/ed25519.js';
import { LedgerError } from '../../ledger/mirror/js/errors.js';

const vectors = JSON.parse(
  readFileSync(new URL('../vectors/ed25519/vectors.json', import.meta.url), 'utf8'));
const h = (s) => Uint8Array.from(Buffer.from(s, 'hex'));

async function outcome(v) {
  try {
    await ed.verify(h(v.key), h(v.sig), h(v.msg));
    return 'accept';
  } catch (e) {
    if (!(e instanceof LedgerError)) throw e;
    return e.message;
  }
}

for (const [name, setup] of [
  ['webcrypto', () => ed.useWebCrypto(null)],
  ['noble', () => ed.useWebCrypto(false)],
]) {
  test(`every edge case of the rule, equation by ${name}`, async () => {
    setup();
    assert.equal(await ed.backend(), name);
    for (const v of vectors) {
      const got = await outcome(v);
      if (v.expected === 'accept') assert.equal(got, 'accept', v.name);
      else assert.ok(got !== 'accept' && got.includes(v.reason), `${v.name}: ${got}`);
    }
  });
}

test('the 14 small-order encodings', () => {
  assert.equal(ed.SMALL_ORDER_ENCODINGS.size, 14);
  const identity = '01' + '00'.repeat(31);
  assert.ok(ed.SMALL_ORDER_ENCODINGS.has(identity));
  assert.ok(ed.SMALL_ORDER_ENCODINGS.has('ec' + 'ff'.repeat(30) + '7f')); // y = p - 1
});

test('WebCrypto alone would accept the identity key; the rule does not', async () => {
  const key = new Uint8Array(32); key[0] = 1;
  const sig = new Uint8Array(64); sig[0] = 1;
  const msg = new TextEncoder().encode('anything');
  const k = await crypto.subtle.importKey('raw', key, { name: 'Ed25519' }, false, ['verify']);
  assert.equal(await crypto.subtle.verify('Ed25519', k, sig, msg), true); // OpenSSL's verdict
  await assert.rejects(ed.verify(key, sig, msg), /small order/);
});
