// "Verify this statement" on a statement page (statement.js): the statement and each
// endorsement the pages list, from the site's statements/<id>.entries.json, checked
// against the checkpoint signed by the key the reader gives; the recount is shown next
// to the page's own total, with what this does not check.
//
// Elements (by id): verify-statement-box (data-statement, data-entries), vkey, verify,
// status, result.

import { LedgerError } from './errors.js';
import { mirrorFetch, trustFrom } from './page.js';
import { NOT_CHECKED, verifyStatement } from './statement.js';

const $ = (id) => document.getElementById(id);
const box = $('verify-statement-box');

const fetchPath = mirrorFetch(new URL('..', document.baseURI)); // the mirror's top: checkpoint, tiles

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
  status.textContent = 'Verifying…';
  const t0 = performance.now();
  try {
    const listed = JSON.parse(new TextDecoder().decode(await fetchPath(`statements/${box.dataset.entries}`)));
    if (listed.statement !== box.dataset.statement) throw new LedgerError('the entry list is for another statement', { code: 'wrong_entry', exit: 1 });
    const r = await verifyStatement(fetchPath, trust, listed.statement, listed.index, listed.endorsements);
    const s = ((performance.now() - t0) / 1000).toFixed(1);
    result.className = 'valid';
    result.textContent = `Checked: the statement and ${(r.checked - 1).toLocaleString()} endorsements are in the log ` +
      `of ${r.size.toLocaleString()} entries and correctly signed; they count ${r.total.toLocaleString()} ` +
      `signatories (${s} s). ${NOT_CHECKED}`;
    status.textContent = 'Done.';
    document.body.dataset.verdict = 'valid';
    document.body.dataset.total = String(r.total);
  } catch (e) {
    if (!(e instanceof LedgerError)) throw e;
    result.className = 'invalid';
    result.textContent = (e.exit === 2 ? 'Could not read the log: ' : 'INVALID: ') + e.text + ` (code ${e.code})`;
    status.textContent = 'Done.';
    document.body.dataset.verdict = e.exit === 2 ? 'unreadable' : 'invalid';
    document.body.dataset.errorCode = e.code;
  }
}

$('verify').addEventListener('click', () => {
  run().catch((e) => {
    $('result').textContent = `Unexpected error: ${e}`;
    document.body.dataset.verdict = 'error';
  });
});
$('verify').disabled = false;
$('needs-server').hidden = true;
