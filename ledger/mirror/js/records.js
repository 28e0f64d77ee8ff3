// Records (docs/spec.md, "Records"): UTF-8 lines `endorsement-ledger/v1 <type>`, the
// fields of the type in their order, one empty line, then `sig <base64 key> <base64
// signature>` lines. Strict: a record is accepted only if it is the one spelling of what
// it says. The signed message of every signature is the body bytes exactly; a record
// carries exactly the signatures its type requires (drafts are not accepted here).
// Errors name the record key (`field`), or `header`, `body`, `record`, `sig`.

import { sha256 } from './vendor/noble-hashes/sha2.js';
import { b64decode, decodeUtf8, equalBytes, hexDecode, hexEncode, parseDecimal, utf8 } from './encoding.js';
import { verify as ed25519Verify } from './ed25519.js';
import { fail } from './errors.js';
import { RANGES, UNICODE_VERSION } from './unicode-data.js';

export const VERSION = 'endorsement-ledger/v1';
export const MAX_RECORD_SIZE = 65385;
export const KINDS = ['state', 'company', 'civil-society', 'individual', 'other'];

// The spec pins Unicode 14.0.0 (unicode-data.js, generated from it): this engine's own
// Unicode tables decide nothing but NFC, which agrees with 14.0.0's on assigned characters.
function charClass(classes, without = '') {
  const u = (cp) => `\\u{${cp.toString(16)}}`;
  let parts = '';
  for (const [first, last, cls] of RANGES) {
    if (!classes.includes(cls)) continue;
    let pieces = [[first, last]];
    for (const ch of without) {
      const cp = ch.codePointAt(0);
      pieces = pieces.flatMap(([lo, hi]) => (cp < lo || cp > hi ? [[lo, hi]]
        : [[lo, cp - 1], [cp + 1, hi]].filter(([a, b]) => a <= b)));
    }
    for (const [lo, hi] of pieces) parts += lo === hi ? u(lo) : `${u(lo)}-${u(hi)}`;
  }
  return new RegExp(`[${parts}]`, 'u');
}
const LINE_BAD = charClass('cu');
const LONG_BAD = charClass('cu', '\n\t');
const SPACE = charClass('s');
const UNASSIGNED = charClass('u');

function checkRepertoire(s, bad, field) {
  const m = bad.exec(s);
  if (m) {
    fail(UNASSIGNED.test(m[0]) ? `code point unassigned in Unicode ${UNICODE_VERSION} in text`
      : 'control or format character in text', { field });
  }
}

function lineText(max) {
  return (s, field) => {
    if (!s) fail('empty text', { field });
    if (utf8.encode(s).length > max) fail(`text longer than ${max} bytes`, { field });
    checkRepertoire(s, LINE_BAD, field);
    if (s.normalize('NFC') !== s) fail('text is not in Unicode NFC', { field });
    const chars = [...s];
    if (SPACE.test(chars[0]) || SPACE.test(chars[chars.length - 1])) fail('text begins or ends with a space', { field });
    return s;
  };
}

function longText(s, field) {
  const bytes = b64decode(s, { field });
  const text = decodeUtf8(bytes, field);
  if (!text) fail('empty text', { field });
  checkRepertoire(text, LONG_BAD, field);
  if (text.normalize('NFC') !== text) fail('text is not in Unicode NFC', { field });
  return text;
}

function origin(s, field) {
  if (!/^[\x21-\x2a\x2c-\x7e]{1,255}$/.test(s)) fail('a log origin is 1 to 255 printable ASCII characters, no space, no "+"', { field });
  return s;
}

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
function domain(s, field) {
  const labels = s.split('.');
  if (s.length > 253 || labels.length < 2 || !labels.every((l) => LABEL.test(l))) {
    fail('not a lowercase DNS name of at least two labels', { field });
  }
  return s;
}

const key32 = (s, field) => b64decode(s, { field, length: 32 });
const hex32 = (s, field) => hexDecode(s, { field, length: 32 });
const VALUES = {
  log: origin,
  signed_at: (s, f) => parseDecimal(s, f),
  key: key32,
  new_key: key32,
  signatory: hex32,
  author: hex32,
  statement: hex32,
  kind: (s, field) => (KINDS.includes(s) ? s : fail('unknown signatory kind', { field })),
  country: (s, field) => (/^[A-Z]{2}$/.test(s) ? s : fail('country must be two uppercase ASCII letters', { field })),
  domain,
  name: lineText(200),
  title: lineText(200),
  comment: lineText(1000),
  reason: lineText(1000),
  text: longText,
};

// type -> [key, optional, repeatable]
const FIELDS = {
  register: [['log'], ['signed_at'], ['key'], ['name'], ['kind'], ['country', true], ['domain', true]],
  statement: [['log'], ['signed_at'], ['title'], ['author', false, true], ['text']],
  endorse: [['log'], ['signed_at'], ['signatory'], ['statement'], ['comment', true]],
  withdraw: [['log'], ['signed_at'], ['signatory'], ['statement']],
  rotate: [['log'], ['signed_at'], ['signatory'], ['new_key']],
  revoke: [['log'], ['signed_at'], ['signatory'], ['key'], ['reason', true]],
};
const MAX_AUTHORS = 16;

export function requiredSignatures(body) {
  if (body.type === 'statement') return body.author.length;
  if (body.type === 'rotate') return 2;
  return 1;
}

function parseBody(lines) {
  const header = lines[0];
  const sp = header.indexOf(' ');
  if (sp < 0 || header.slice(0, sp) !== VERSION) fail('unknown format or version', { field: 'header' });
  const type = header.slice(sp + 1);
  const spec = FIELDS[type];
  if (!spec || !Object.hasOwn(FIELDS, type)) fail('unknown record type', { field: 'header' });
  const body = { type };
  let i = 1;
  for (const [key, optional, repeatable] of spec) {
    const values = [];
    while (i < lines.length) {
      const line = lines[i];
      const s = line.indexOf(' ');
      const k = s < 0 ? line : line.slice(0, s);
      if (k !== key) break;
      if (s < 0) fail("line is not 'key value'", { field: key });
      values.push(VALUES[key](line.slice(s + 1), key));
      i += 1;
      if (!repeatable) break;
    }
    if (!values.length && !optional) {
      const k = i < lines.length ? lines[i].split(' ', 1)[0] : null;
      const knownKeys = spec.map((f) => f[0]);
      if (k !== null && !knownKeys.includes(k)) fail(`unknown key in a '${type}' record`, { field: k });
      if (k !== null && spec.some((f) => f[0] === k && f !== spec.find((g) => g[0] === key))) {
        const seen = spec.findIndex((f) => f[0] === k) < spec.findIndex((f) => f[0] === key);
        fail(seen ? 'repeated key' : 'key out of order', { field: k });
      }
      fail(`missing key '${key}'`, { field: key });
    }
    if (repeatable) {
      if (values.length > MAX_AUTHORS) fail(`at most ${MAX_AUTHORS} ${key} lines`, { field: key });
      const hexes = values.map(hexEncode);
      if (new Set(hexes).size !== hexes.length) fail(`duplicated ${key}`, { field: key });
      body[key] = values;
    } else if (values.length) {
      body[key] = values[0];
    }
  }
  if (i < lines.length) {
    const k = lines[i].split(' ', 1)[0];
    const knownKeys = spec.map((f) => f[0]);
    if (!knownKeys.includes(k)) fail(`unknown key in a '${type}' record`, { field: k });
    const pos = knownKeys.indexOf(k);
    const filled = spec.slice(0, pos + 1).every((f) => f[1] || body[f[0]] !== undefined);
    fail(filled && body[k] !== undefined ? 'repeated key' : 'key out of order', { field: k });
  }
  return body;
}

/** Parse a complete record (bytes) strictly; does not verify the signatures. */
export function parseRecord(data) {
  if (data.length > MAX_RECORD_SIZE) fail(`record larger than ${MAX_RECORD_SIZE} bytes`, { code: 'entry_too_large', field: 'record' });
  const bad = data.findIndex((b) => (b < 0x20 && b !== 0x0a) || b === 0x7f);
  if (bad >= 0) fail(`control character at byte ${bad}`, { field: 'record' });
  const s = decodeUtf8(data, 'record');
  if (!s.endsWith('\n')) fail('missing final newline', { field: 'record' });
  const split = s.indexOf('\n\n');
  if (split < 0) fail('no empty line between body and signatures', { field: 'record' });
  const bodyText = s.slice(0, split + 1);
  const bodyBytes = utf8.encode(bodyText);
  const body = parseBody(bodyText.slice(0, -1).split('\n'));
  const sigText = s.slice(split + 2);
  const sigLines = sigText ? sigText.slice(0, -1).split('\n') : [];
  const signatures = sigLines.map((line) => {
    const parts = line.split(' ');
    if (parts.length !== 3 || parts[0] !== 'sig') fail("signature line is not 'sig <key> <signature>'", { field: 'sig' });
    return { publicKey: b64decode(parts[1], { field: 'sig', length: 32 }), signature: b64decode(parts[2], { field: 'sig', length: 64 }) };
  });
  const required = requiredSignatures(body);
  if (signatures.length < required) fail(`record needs ${required} signature(s), has ${signatures.length}`, { field: 'sig', code: 'missing_signature' });
  if (signatures.length > required) fail(`record has more than its ${required} signature(s)`, { field: 'sig' });
  return { body, bodyBytes, signatures, recordId: sha256(bodyBytes), bytes: data };
}

/** docs/spec.md, "Signatures", steps 1-5 (no log state). */
export async function checkSignatures(record) {
  const { body, signatures } = record;
  const keys = signatures.map((s) => hexEncode(s.publicKey));
  if (new Set(keys).size !== keys.length) fail('one key signs the record twice', { code: 'bad_signature', field: 'sig' });
  if (body.type === 'register' && !equalBytes(signatures[0].publicKey, body.key)) {
    fail('a registration must be signed by its key', { code: 'wrong_signer', field: 'sig' });
  }
  if (body.type === 'rotate' && !equalBytes(signatures[1].publicKey, body.new_key)) {
    fail('the second signature of a rotation must be by new_key', { code: 'wrong_signer', field: 'sig' });
  }
  for (const s of signatures) await ed25519Verify(s.publicKey, s.signature, record.bodyBytes);
}

export const keyHash = (pub) => sha256(pub);
