// The value spellings of docs/spec.md, "Conventions": canonical base64 (RFC 4648 §4,
// padded, zero padding bits), lowercase hex, decimals without sign or leading zeros
// up to 2^63 - 1. Each parser accepts exactly one spelling of each value.

import { fail } from './errors.js';

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64_INDEX = new Int16Array(128).fill(-1);
for (let i = 0; i < 64; i++) B64_INDEX[B64.charCodeAt(i)] = i;
export const MAX_UINT63 = (1n << 63n) - 1n;

export const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Decode UTF-8 strictly (no replacement characters, a BOM kept as U+FEFF). */
export function decodeUtf8(bytes, field = null) {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    fail('not valid UTF-8', { field });
  }
}

export function b64encode(bytes) {
  let out = '';
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out += B64[n >> 18] + B64[(n >> 12) & 63] + B64[(n >> 6) & 63] + B64[n & 63];
  }
  if (i < bytes.length) {
    const n = (bytes[i] << 16) | ((i + 1 < bytes.length ? bytes[i + 1] : 0) << 8);
    out += B64[n >> 18] + B64[(n >> 12) & 63];
    out += i + 1 < bytes.length ? B64[(n >> 6) & 63] + '=' : '==';
  }
  return out;
}

/** Canonical base64 only: the one encoding of its bytes (`length` checks the size). */
export function b64decode(text, { field = null, length = null } = {}) {
  const n = text.length;
  if (n % 4 !== 0) fail('base64 length is not a multiple of 4', { field });
  const pad = n === 0 ? 0 : text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0;
  const size = (n / 4) * 3 - pad;
  const out = new Uint8Array(size);
  let o = 0;
  for (let i = 0; i < n; i += 4) {
    const q = [0, 0, 0, 0];
    for (let j = 0; j < 4; j++) {
      const c = text.charCodeAt(i + j);
      const last = i + 4 === n;
      if (c === 61 && last && j >= 4 - pad) continue; // '='
      const v = c < 128 ? B64_INDEX[c] : -1;
      if (v < 0) fail('not canonical base64', { field });
      q[j] = v;
    }
    const v = (q[0] << 18) | (q[1] << 12) | (q[2] << 6) | q[3];
    out[o++] = v >> 16;
    if (o < size) out[o++] = (v >> 8) & 255;
    if (o < size) out[o++] = v & 255;
  }
  if (b64encode(out) !== text) fail('not canonical base64', { field });
  if (length !== null && size !== length) {
    fail(`must be ${length} bytes, found ${size}`, { field });
  }
  return out;
}

const HEX = /^(?:[0-9a-f]{2})*$/;
export function hexEncode(bytes) {
  let s = '';
  for (const b of bytes) s += (b < 16 ? '0' : '') + b.toString(16);
  return s;
}

export function hexDecode(text, { field = null, length = null } = {}) {
  if (!HEX.test(text)) fail('not lowercase hex', { field });
  if (length !== null && text.length !== 2 * length) {
    fail(`must be ${2 * length} hex digits, found ${text.length}`, { field });
  }
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.substr(2 * i, 2), 16);
  return out;
}

const DECIMAL = /^(?:0|[1-9][0-9]{0,18})$/;
/** A decimal of docs/spec.md, as a Number if it is exact, else a BigInt. */
export function parseDecimal(text, field = null) {
  if (!DECIMAL.test(text)) fail('not a decimal (no sign, no leading zeros)', { field });
  const big = BigInt(text);
  if (big > MAX_UINT63) fail('decimal exceeds 2^63 - 1', { field });
  return big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
}

export function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

export function concat(...parts) {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
