// Signed notes (C2SP signed-note), checkpoints (C2SP tlog-checkpoint), cosignatures
// (C2SP tlog-cosignature) and trust policies (C2SP tlog-policy), as docs/spec.md
// ("Checkpoints", "Verification procedure") uses them.
//
// A note is UTF-8 text ending in LF, an empty line, then signature lines
// `— <key name> <base64(key ID[4] || signature)>`; no control characters but LF; at most
// 1 MiB and 100 signature lines. Verifiers ignore signatures of unknown keys (name and
// key ID), reject a note with an invalid signature by a known key, and reject a note
// with no valid signature by a known key. Every witness listed in a policy is a known
// key, whatever the quorum.

import { sha256 } from './vendor/noble-hashes/sha2.js';
import { b64decode, concat, decodeUtf8, equalBytes, hexEncode, parseDecimal, utf8 } from './encoding.js';
import { checkPublicKey, verify as ed25519Verify } from './ed25519.js';
import { LedgerError, fail } from './errors.js';

export const MAX_NOTE_SIZE = 1 << 20;
export const MAX_SIGNATURES = 100;
export const ALG_ED25519 = 0x01;
export const ALG_COSIGNATURE_V1 = 0x04;
const DASH = '\u2014 ';
const CONTROL = /[\x00-\x09\x0b-\x1f]/;

// Unicode White_Space (as Go's unicode.IsSpace, which signed-note's reference uses).
const SPACE = /[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/;

/** Key names: non-empty, no Unicode space, no '+', no control below U+0020. */
export function checkKeyName(name, field = 'name') {
  if (!name || name.includes('+') || SPACE.test(name) || CONTROL.test(name)) {
    fail("key name must be non-empty UTF-8, without spaces, '+' or control characters", { field });
  }
}

export function keyId(name, alg, pub) {
  return sha256(concat(utf8.encode(name), Uint8Array.of(0x0a, alg), pub)).subarray(0, 4);
}

export function parseNote(data) {
  if (data.length > MAX_NOTE_SIZE) fail(`note larger than ${MAX_NOTE_SIZE} bytes`, { code: 'too_large', field: 'note' });
  const s = decodeUtf8(data, 'note');
  if (CONTROL.test(s)) fail('note contains a control character other than newline', { field: 'note' });
  const split = s.lastIndexOf('\n\n');
  if (split < 0) fail('note has no empty line before its signatures', { field: 'note' });
  const text = s.slice(0, split + 1);
  const block = s.slice(split + 2);
  if (!block) fail('note has no signature lines', { field: 'signatures' });
  if (!block.endsWith('\n')) fail('last signature line does not end with a newline', { field: 'signatures' });
  const lines = block.slice(0, -1).split('\n');
  if (lines.length > MAX_SIGNATURES) fail(`too many signature lines (at most ${MAX_SIGNATURES})`, { code: 'too_large', field: 'signatures' });
  const signatures = lines.map((line, i) => {
    if (!line.startsWith(DASH)) fail(`signature line ${i + 1} does not start with an em dash and a space`, { field: 'signatures' });
    const rest = line.slice(DASH.length);
    const sp = rest.indexOf(' ');
    if (sp < 0) fail(`signature line ${i + 1} has no space after the key name`, { field: 'signatures' });
    const name = rest.slice(0, sp);
    checkKeyName(name, 'signatures');
    const raw = b64decode(rest.slice(sp + 1), { field: 'signatures' });
    if (raw.length < 5) fail(`signature line ${i + 1} holds fewer than 5 bytes`, { field: 'signatures' });
    return { name, keyId: raw.subarray(0, 4), signature: raw.subarray(4) };
  });
  return { text, message: utf8.encode(text), signatures };
}

/** A verifier key: `<name>+<hex key ID>+<base64(alg || key)>`, alg 0x01 or 0x04. */
export function parseVkey(vkey) {
  const a = vkey.indexOf('+');
  const b = a < 0 ? -1 : vkey.indexOf('+', a + 1);
  if (a < 0 || b < 0) fail('vkey must be <name>+<key ID>+<key>', { field: 'vkey' });
  const name = vkey.slice(0, a);
  const hexId = vkey.slice(a + 1, b);
  checkKeyName(name, 'vkey');
  if (!/^[0-9a-f]{8}$/.test(hexId)) fail('vkey key ID must be 8 lowercase hex digits', { field: 'vkey' });
  const raw = b64decode(vkey.slice(b + 1), { field: 'vkey' });
  if (raw.length !== 33 || (raw[0] !== ALG_ED25519 && raw[0] !== ALG_COSIGNATURE_V1)) {
    fail('vkey must hold signature type 0x01 or 0x04 and a 32-byte Ed25519 key', { field: 'vkey' });
  }
  const alg = raw[0];
  const pub = raw.slice(1);
  try {
    checkPublicKey(pub, 'vkey');
  } catch (e) {
    fail(`vkey key is not acceptable: ${e.message}`, { field: 'vkey' });
  }
  const id = keyId(name, alg, pub);
  if (hexEncode(id) !== hexId) fail('vkey key ID does not match its name and key', { field: 'vkey' });
  return { name, alg, publicKey: pub, keyId: id, vkey };
}

function cosignatureMessage(text, timestamp) {
  return utf8.encode(`cosignature/v1\ntime ${timestamp}\n${text}`);
}

/** Verify one signature line against a known key; return the cosignature time or null. */
async function checkSignature(key, note, sig) {
  if (key.alg === ALG_ED25519) {
    await ed25519Verify(key.publicKey, sig.signature, note.message);
    return null;
  }
  if (sig.signature.length !== 72) fail('cosignature must be 72 bytes (timestamp and Ed25519 signature)', { code: 'bad_signature', field: 'signature' });
  let t = 0n;
  for (let i = 0; i < 8; i++) t = (t << 8n) | BigInt(sig.signature[i]);
  if (t > (1n << 63n) - 1n) fail('cosignature timestamp exceeds 2^63 - 1', { code: 'bad_signature', field: 'signature' });
  await ed25519Verify(key.publicKey, sig.signature.subarray(8), cosignatureMessage(note.text, t));
  return t;
}

/** Open a note against trusted keys; returns the note with `verified` signatures. */
export async function openNote(data, keys) {
  const note = parseNote(data);
  const known = new Map();
  for (const k of keys) {
    const id = `${k.name}\n${hexEncode(k.keyId)}`;
    if (!known.has(id)) known.set(id, []);
    known.get(id).push(k);
  }
  const verified = [];
  for (const sig of note.signatures) {
    const candidates = known.get(`${sig.name}\n${hexEncode(sig.keyId)}`);
    if (!candidates) continue;
    if (candidates.length > 1) fail(`ambiguous verifiers: several keys are named ${sig.name}`, { code: 'bad_signature', field: 'signatures' });
    try {
      const time = await checkSignature(candidates[0], note, sig);
      verified.push({ ...sig, key: candidates[0], time });
    } catch (e) {
      if (!(e instanceof LedgerError)) throw e;
      fail(`invalid signature by known key ${sig.name}+${hexEncode(sig.keyId)}: ${e.message}`, { code: 'bad_signature', field: 'signatures' });
    }
  }
  if (!verified.length) fail('note has no valid signature by a known key', { code: 'unknown_key', field: 'signatures' });
  return { ...note, verified };
}

/** The checkpoint of a note text: origin, size, root, extension lines. */
export function parseCheckpointText(text) {
  if (!text.endsWith('\n')) fail('checkpoint text must end with a newline', { field: 'checkpoint' });
  const lines = text.slice(0, -1).split('\n');
  if (lines.length < 3) fail('checkpoint text needs an origin, a size and a root hash', { field: 'checkpoint' });
  if (lines.some((l) => !l)) fail('checkpoint text contains an empty line', { field: 'checkpoint' });
  const [origin, size, root, ...extensions] = lines;
  const n = parseDecimal(size, 'size');
  if (typeof n !== 'number') fail('tree size too large for this verifier', { field: 'size' });
  return { origin, size: n, root: b64decode(root, { field: 'root', length: 32 }), extensions };
}

/** docs/spec.md, whole-log steps 1-2: verify a signed checkpoint under a trust. */
export async function openCheckpoint(data, trust) {
  const keys = [...trust.logs, ...trust.witnesses.map((w) => w.key)];
  const note = await openNote(data, keys);
  const cp = parseCheckpointText(note.text);
  if (trust.origin !== null && cp.origin !== trust.origin) {
    fail(`checkpoint is for another log (expected '${trust.origin}', found '${cp.origin}')`, { code: 'wrong_origin', field: 'origin' });
  }
  if (!note.verified.some((s) => s.key.alg === ALG_ED25519 && s.name === cp.origin && trust.logs.includes(s.key))) {
    fail('no valid signature by a log key named after the checkpoint origin', { code: 'unknown_key', field: 'origin' });
  }
  if (cp.extensions.length) fail("the log's checkpoints have no extension lines", { field: 'extensions' });
  checkQuorum(trust, note);
  return { checkpoint: cp, note };
}

// --- trust: a vkey, or a tlog-policy ------------------------------------------------------

export function trustFromVkey(vkey) {
  const key = parseVkey(vkey);
  if (key.alg !== ALG_ED25519) fail('the log key must be an Ed25519 key (type 0x01)', { field: 'vkey' });
  return { origin: key.name, logs: [key], witnesses: [], groups: new Map(), quorum: null };
}

/** Parse a tlog-policy file (text): log, witness, group and quorum lines. */
export function parsePolicy(text) {
  const logs = [];
  const witnesses = [];
  const groups = new Map();
  const defined = new Set();
  const listed = new Set();
  let quorum;
  if (/[\x00-\x08\x0b-\x1f\x7f]/.test(text)) fail('policy contains a control character', { field: 'policy' });
  if (text && !text.endsWith('\n')) fail('the last policy line must end with a newline', { field: 'policy' });
  for (const raw of text.split('\n').slice(0, -1)) {
    const items = raw.split(/[ \t]+/).filter((x) => x);
    if (!items.length || items[0].startsWith('#')) continue;
    const [kw, ...args] = items;
    const define = (name) => {
      if (name === 'none' || defined.has(name)) fail(`policy name '${name}' is defined twice or reserved`, { field: 'policy' });
      defined.add(name);
    };
    if (kw === 'log' && (args.length === 1 || args.length === 2)) {
      const k = parseVkey(args[0]);
      if (k.alg !== ALG_ED25519) fail('a policy log must be an Ed25519 key', { field: 'policy' });
      logs.push(k);
    } else if (kw === 'witness' && (args.length === 2 || args.length === 3)) {
      const k = parseVkey(args[1]);
      if (k.alg !== ALG_COSIGNATURE_V1) fail('a policy witness must be a cosigner key (type 0x04)', { field: 'policy' });
      define(args[0]);
      witnesses.push({ name: args[0], key: k, url: args[2] ?? null });
    } else if (kw === 'group' && args.length >= 3) {
      const [name, t, ...members] = args;
      for (const m of members) {
        if (!defined.has(m) || listed.has(m)) fail(`group member '${m}' is undefined or listed twice`, { field: 'policy' });
        listed.add(m);
      }
      const k = t === 'all' ? members.length : t === 'any' ? 1 : parseDecimal(t, 'policy');
      if (!(k >= 1 && k <= members.length)) fail('group threshold must be 1..n', { field: 'policy' });
      define(name);
      groups.set(name, { threshold: k, members });
    } else if (kw === 'quorum' && args.length === 1) {
      if (quorum !== undefined) fail('policy has two quorum lines', { field: 'policy' });
      if (args[0] !== 'none' && !defined.has(args[0])) fail(`quorum '${args[0]}' names nothing defined`, { field: 'policy' });
      quorum = args[0] === 'none' ? null : args[0];
    } else {
      fail(`unknown policy line: ${kw}`, { field: 'policy' });
    }
  }
  if (quorum === undefined) fail('policy has no quorum line', { field: 'policy' });
  if (!logs.length) fail('policy names no log', { field: 'policy' });
  return { origin: logs.length === 1 ? logs[0].name : null, logs, witnesses, groups, quorum };
}

function satisfied(name, have, groups) {
  if (have.has(name)) return true;
  const g = groups.get(name);
  if (!g) return false;
  return g.members.filter((m) => satisfied(m, have, groups)).length >= g.threshold;
}

/** Every listed witness's cosignature was checked by openNote; is the quorum met? */
export function checkQuorum(trust, note) {
  const have = new Set();
  for (const s of note.verified) {
    const w = trust.witnesses.find((x) => x.key === s.key);
    if (w) have.add(w.name);
  }
  if (trust.quorum !== null && !satisfied(trust.quorum, have, trust.groups)) {
    fail(`witness quorum not met: ${trust.quorum}`, { code: 'quorum_not_met', field: 'cosignatures' });
  }
}

export { equalBytes };
