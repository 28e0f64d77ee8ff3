// The log's state and the semantic rules (docs/spec.md, "Semantic rules" and "Tallies"),
// replayed entry by entry. `apply(entry)` checks rules 1-11 for the entry's record against
// the state of the entries before it (rules 12-14 are the chain, checked by the caller
// as it reads entries), then applies the record's effect. A broken rule throws a
// LedgerError naming the entry, the field and the rule's error code.

import { equalBytes, hexEncode } from './encoding.js';
import { fail } from './errors.js';
import { KINDS, keyHash } from './records.js';

export const MAX_FUTURE_SKEW_S = 300;

function rule(message, index, field, code) {
  fail(message, { index, field, code });
}

export class LogState {
  constructor(origin) {
    this.origin = origin;
    this.signatories = new Map(); // id hex -> {id, name, kind, country, domain, index, currentKey, active, keys}
    this.keys = new Map(); // key hash hex -> {signatory: id hex, revoked}
    this.statements = new Map(); // id hex -> {id, title, authors, index, total, byKind}
    this.pairs = new Map(); // signatory hex + statement hex -> {active, lastSignedAt}
    this.kindCounts = Object.fromEntries(KINDS.map((k) => [k, 0]));
    this.warnings = []; // rule 3 (too_old) is reported, not fatal, for a verifier
  }

  /** Rule 4: the signatory acting through `signer` must be active with that current key. */
  acting(id, signer, index, field) {
    const s = this.signatories.get(hexEncode(id));
    if (!s) rule('signatory is not registered', index, field, 'unknown_signatory');
    if (!s.active) rule("signatory's key was revoked; it may sign nothing more", index, field, 'key_revoked');
    if (!equalBytes(signer, s.currentKey)) {
      const k = this.keys.get(hexEncode(keyHash(signer)));
      if (k && k.signatory === s.hex) rule('signed with a key that was rotated away', index, 'sig', 'key_rotated');
      rule("signed with a key that is not the signatory's current key", index, 'sig', 'wrong_key');
    }
    return s;
  }

  apply(entry, { maxAgeS = null } = {}) {
    const { index, time, record } = entry;
    const b = record.body;
    const sigs = record.signatures;
    if (b.log !== this.origin) rule('record is bound to another log', index, 'log', 'wrong_log');
    const t = Math.floor(time / 1000);
    if (b.signed_at > t + MAX_FUTURE_SKEW_S) {
      rule(`signed_at lies more than ${MAX_FUTURE_SKEW_S} s after the integration time`, index, 'signed_at', 'clock_skew');
    }
    if (maxAgeS !== null && b.signed_at < t - maxAgeS) this.warnings.push({ index, code: 'too_old' });
    if (b.type === 'register') {
      const kh = hexEncode(keyHash(b.key));
      if (this.keys.has(kh)) rule('key is already registered or was used by a signatory', index, 'key', 'already_registered');
      this.keys.set(kh, { signatory: kh, revoked: false });
      this.signatories.set(kh, {
        hex: kh, name: b.name, kind: b.kind, country: b.country ?? null, domain: b.domain ?? null,
        index, currentKey: b.key, active: true,
      });
      this.kindCounts[b.kind] += 1;
    } else if (b.type === 'statement') {
      const id = hexEncode(record.recordId);
      if (this.statements.has(id)) rule('statement is already in the log', index, null, 'duplicate');
      b.author.forEach((a, i) => this.acting(a, sigs[i].publicKey, index, 'author'));
      this.statements.set(id, {
        id, title: b.title, authors: b.author.map(hexEncode), index,
        total: 0, byKind: Object.fromEntries(KINDS.map((k) => [k, 0])),
      });
    } else if (b.type === 'endorse' || b.type === 'withdraw') {
      const s = this.acting(b.signatory, sigs[0].publicKey, index, 'signatory');
      const st = this.statements.get(hexEncode(b.statement));
      if (!st) rule('no such statement in the log', index, 'statement', 'unknown_statement');
      const key = s.hex + st.id;
      const pair = this.pairs.get(key);
      if (pair && b.signed_at <= pair.lastSignedAt) {
        rule('signed_at must increase for each signatory and statement (replay?)', index, 'signed_at', 'replay');
      }
      const endorse = b.type === 'endorse';
      if (endorse && pair && pair.active) rule('signatory already endorses this statement', index, 'statement', 'already_endorsed');
      if (!endorse && !(pair && pair.active)) rule('signatory has no active endorsement of this statement', index, 'statement', 'not_endorsed');
      this.pairs.set(key, { active: endorse, lastSignedAt: b.signed_at });
      const d = endorse ? 1 : -1;
      st.total += d;
      st.byKind[s.kind] += d;
    } else if (b.type === 'rotate') {
      const s = this.acting(b.signatory, sigs[0].publicKey, index, 'signatory');
      const kh = hexEncode(keyHash(b.new_key));
      if (this.keys.has(kh)) rule('new key was already used by a signatory', index, 'new_key', 'key_reused');
      this.keys.set(kh, { signatory: s.hex, revoked: false });
      s.currentKey = b.new_key;
    } else if (b.type === 'revoke') {
      const k = this.keys.get(hexEncode(keyHash(b.key)));
      const id = hexEncode(b.signatory);
      if (!k || k.signatory !== id) rule('key does not belong to this signatory', index, 'key', 'unknown_key');
      if (k.revoked) rule('key is already revoked', index, 'key', 'already_revoked');
      // A key may always revoke itself; otherwise the current key must sign (rule 11).
      if (!equalBytes(sigs[0].publicKey, b.key)) this.acting(b.signatory, sigs[0].publicKey, index, 'signatory');
      k.revoked = true;
      const s = this.signatories.get(id);
      if (equalBytes(b.key, s.currentKey)) s.active = false;
    }
  }

  /** The tallies of docs/spec.md, "Tallies", as `ledger-verify --json` reports them. */
  tallies(size) {
    return {
      origin: this.origin,
      size,
      signatories: this.signatories.size,
      signatories_by_kind: { ...this.kindCounts },
      statements: [...this.statements.values()].map((s) => ({
        id: s.id, title: s.title, index: s.index, endorsements: s.total, endorsements_by_kind: { ...s.byKind },
      })),
    };
  }
}
