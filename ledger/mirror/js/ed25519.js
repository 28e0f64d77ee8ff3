// The Ed25519 acceptance rule of docs/spec.md ("The Ed25519 acceptance rule"), written
// from the spec for the browser. A public key A is acceptable iff (1) it is 32 bytes,
// (2) a canonical encoding (y < p, a curve point, not x = 0 with the sign bit set),
// (3) not of small order and (4) in the prime-order subgroup ([L]A is the identity). A
// signature R || S is valid iff (5) S < L, (6) R is none of the encodings, canonical or
// not, of the 8 small-order points, and (7) the cofactorless equation holds with R
// compared as bytes.
//
// Steps 1-6 run here with @noble/curves (vendored, pinned: vendor/SHA256SUMS) for the
// point arithmetic; each key's verdict is cached. Step 7 runs in WebCrypto (Ed25519 in
// Chromium's BoringSSL and Node's OpenSSL checks exactly the cofactorless equation with
// R compared as bytes), which is much faster than curve arithmetic in JavaScript. Where
// WebCrypto has no Ed25519, noble's verify (the cofactored equation) decides instead,
// after also requiring R to be a canonical encoding of a point of the prime-order
// subgroup, which the spec says accepts exactly the same signatures.
//
// WebCrypto alone is not the rule: like OpenSSL it accepts the identity key with
// R = identity and S = 0 for every message. Steps 1-6 above are what reject that.

import { ed25519 } from './vendor/noble-curves/ed25519.js';
import { b64encode, hexEncode } from './encoding.js';
import { fail } from './errors.js';

const Point = ed25519.Point;
export const P = 2n ** 255n - 19n;
export const L = 2n ** 252n + 27742317777372353535851937790883648493n;

function leToBig(bytes) {
  let n = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i]);
  return n;
}

function bigToLe32(n) {
  const out = new Uint8Array(32);
  let m = n;
  for (let i = 0; i < 32; i++) {
    out[i] = Number(m & 255n);
    m >>= 8n;
  }
  return out;
}

/** The 14 encodings of the 8 small-order points: 7 y values (with y + p < 2^255 for
 * y = 0 and y = 1), each with either sign bit. */
function smallOrderEncodings() {
  // [L]Q is the torsion part of Q; for half of all Q it has order 8.
  let t = null;
  for (let y = 2n; t === null; y++) {
    let q;
    try {
      q = Point.fromBytes(bigToLe32(y), false);
    } catch {
      continue;
    }
    const tq = q.multiplyUnsafe(L - 1n).add(q);
    if (!tq.double().double().is0()) t = tq;
  }
  const ys = new Set();
  let pt = Point.ZERO;
  for (let i = 0; i < 8; i++) {
    ys.add(pt.toAffine().y);
    pt = pt.add(t);
  }
  for (const y of [...ys]) if (y + P < 2n ** 255n) ys.add(y + P);
  const out = new Set();
  for (const y of ys) {
    const enc = bigToLe32(y);
    out.add(hexEncode(enc));
    enc[31] |= 0x80;
    out.add(hexEncode(enc));
  }
  return out;
}

export const SMALL_ORDER_ENCODINGS = smallOrderEncodings();

const KEY_CACHE_SIZE = 1 << 16;
const keyVerdicts = new Map(); // base64 key -> null (acceptable) or the reason

function keyReason(pub) {
  if (pub.length !== 32) return `public key must be 32 bytes, not ${pub.length}`;
  let point;
  try {
    point = Point.fromBytes(pub, false);
  } catch (e) {
    const m = String(e && e.message);
    if (m.includes('x=0')) return 'public key is a non-canonical encoding (x = 0 with the sign bit set)';
    if (m.includes('point.y') || m.includes('expected')) return 'public key is a non-canonical encoding (y >= p)';
    return 'public key is not a point on the curve';
  }
  if (point.isSmallOrder()) return 'public key has small order';
  if (!point.isTorsionFree()) return 'public key is not in the prime-order subgroup (mixed order)';
  return null;
}

/** Steps 1-4: throw unless `pub` is an acceptable public key. */
export function checkPublicKey(pub, field = 'public_key') {
  const id = b64encode(pub);
  let reason = keyVerdicts.get(id);
  if (reason === undefined) {
    reason = keyReason(pub);
    if (keyVerdicts.size >= KEY_CACHE_SIZE) keyVerdicts.delete(keyVerdicts.keys().next().value);
    keyVerdicts.set(id, reason);
  }
  if (reason !== null) fail(reason, { code: 'bad_signature', field });
}

/** Steps 5 and 6. */
function checkSignatureShape(sig, field) {
  if (sig.length !== 64) fail(`signature must be 64 bytes, not ${sig.length}`, { code: 'bad_signature', field });
  if (leToBig(sig.subarray(32)) >= L) fail('signature S is not reduced modulo L', { code: 'bad_signature', field });
  if (SMALL_ORDER_ENCODINGS.has(hexEncode(sig.subarray(0, 32)))) {
    fail('signature R is a small-order point', { code: 'bad_signature', field });
  }
}

let subtle = globalThis.crypto && globalThis.crypto.subtle;
let webCryptoWorks = null; // decided by a self-test on first use
const cryptoKeys = new Map();

const RFC8032_KEY = Uint8Array.from([
  0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64, 0x07, 0x3a,
  0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07, 0x51, 0x1a,
]);
const RFC8032_SIG = Uint8Array.from(
  'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b'
    .match(/../g).map((h) => parseInt(h, 16)),
);

async function webCryptoVerify(pub, sig, msg) {
  const id = b64encode(pub);
  let key = cryptoKeys.get(id);
  if (key === undefined) {
    key = await subtle.importKey('raw', pub, { name: 'Ed25519' }, false, ['verify']);
    if (cryptoKeys.size >= KEY_CACHE_SIZE) cryptoKeys.delete(cryptoKeys.keys().next().value);
    cryptoKeys.set(id, key);
  }
  return subtle.verify({ name: 'Ed25519' }, key, sig, msg);
}

async function selfTest() {
  if (!subtle) return false;
  try {
    const good = await webCryptoVerify(RFC8032_KEY, RFC8032_SIG, new Uint8Array(0));
    const bad = RFC8032_SIG.slice();
    bad[0] ^= 1;
    const rejected = !(await webCryptoVerify(RFC8032_KEY, bad, new Uint8Array(0)));
    return good && rejected;
  } catch {
    return false;
  }
}

/** Which implementation checks the equation (step 7): 'webcrypto' or 'noble'. */
export async function backend() {
  if (webCryptoWorks === null) webCryptoWorks = await selfTest();
  return webCryptoWorks ? 'webcrypto' : 'noble';
}

/** For tests: force the noble path (`false`) or the WebCrypto path (`null`: decide again). */
export function useWebCrypto(value) {
  webCryptoWorks = value === false ? false : null;
}

function nobleVerify(pub, sig, msg) {
  // The cofactored equation, so R must also be a canonical prime-order point.
  let r;
  try {
    r = Point.fromBytes(sig.subarray(0, 32), false);
  } catch {
    return false;
  }
  if (!r.isTorsionFree()) return false;
  return ed25519.verify(sig, msg, pub, { zip215: false });
}

/** Throw unless `sig` is a valid signature of `msg` by `pub` under the rule. */
export async function verify(pub, sig, msg, field = 'signature') {
  checkPublicKey(pub, 'public_key');
  checkSignatureShape(sig, field);
  const ok = (await backend()) === 'webcrypto'
    ? await webCryptoVerify(pub, sig, msg)
    : nobleVerify(pub, sig, msg);
  if (!ok) fail('signature does not verify', { code: 'bad_signature', field });
}

export function _setSubtleForTests(s) {
  subtle = s;
  webCryptoWorks = null;
  cryptoKeys.clear();
}
