// What the verifier's pages share: fetching the mirror's files relative to its top
// (untrusted: everything fetched is checked), and reading the trust the reader gave.

import { LedgerError } from './errors.js';
import { parsePolicy, trustFromVkey } from './note.js';

/** A fetch of paths under the mirror's `top` URL: bytes, or a LedgerError (exit 2). */
export function mirrorFetch(top) {
  return async (path) => {
    let res;
    try {
      res = await fetch(new URL(path, top), { cache: path === 'checkpoint' ? 'no-cache' : 'default' });
    } catch (e) {
      throw new LedgerError(`${path}: ${e.message}`, { code: 'unreadable', field: path, exit: 2 });
    }
    if (res.status === 404 || res.status === 410) {
      throw new LedgerError(`${path}: no such file`, { code: 'not_found', field: path, exit: 2 });
    }
    if (!res.ok) throw new LedgerError(`${path}: HTTP ${res.status}`, { code: 'unreadable', field: path, exit: 2 });
    return new Uint8Array(await res.arrayBuffer());
  };
}

/** The reader's trust: a tlog-policy (it has a quorum line) or a single vkey. */
export function trustFrom(text) {
  const t = text.trim();
  return /^(log|witness|group|quorum|#)/m.test(t) && t.includes('quorum') ? parsePolicy(`${t}\n`) : trustFromVkey(t);
}

/**
 * Wire a verifier page (elements by id: vkey, verify, status, result, needs-server):
 * on a click, read the trust, run `check(trust, status, seconds)`, which returns the
 * sentence to show for a valid result (`seconds()` is the time since the click), and
 * show the failure, named as ledger-verify names it, otherwise. The verdict is also
 * left in `document.body.dataset` (verdict, errorCode) for tests.
 */
export function startPage(check) {
  const $ = (id) => document.getElementById(id);
  async function run() {
    const status = $('status');
    const result = $('result');
    result.textContent = '';
    result.className = '';
    let trust;
    try {
      trust = trustFrom($('vkey').value);
    } catch (e) {
      status.textContent = `That is not a valid vkey or policy: ${e.message}`;
      return;
    }
    const t0 = performance.now();
    const seconds = () => ((performance.now() - t0) / 1000).toFixed(1);
    try {
      const text = await check(trust, status, seconds);
      result.className = 'valid';
      result.textContent = text;
      document.body.dataset.verdict = 'valid';
    } catch (e) {
      if (!(e instanceof LedgerError)) throw e;
      result.className = 'invalid';
      result.textContent = `${e.exit === 2 ? 'Could not read the log: ' : 'INVALID: '}${e.text} (code ${e.code})`;
      document.body.dataset.verdict = e.exit === 2 ? 'unreadable' : 'invalid';
      document.body.dataset.errorCode = e.code;
    }
    status.textContent = 'Done.';
  }
  $('verify').addEventListener('click', () => {
    run().catch((e) => {
      $('result').textContent = `Unexpected error: ${e}`;
      document.body.dataset.verdict = 'error';
    });
  });
  $('verify').disabled = false;
  const hint = $('needs-server');
  if (hint) hint.hidden = true;
}
