// "Verify this statement" on a statement page (statement.js): the statement and each
// endorsement the pages list, from the site's statements/<id>.entries.json, checked
// against the checkpoint signed by the key the reader gives; the recount is shown next
// to the page's own total, with what this does not check.
//
// Elements (by id): verify-statement-box (data-statement, data-entries), vkey, verify,
// status, result.

import { LedgerError } from './errors.js';
import { mirrorFetch, startPage } from './page.js';
import { NOT_CHECKED, verifyStatement } from './statement.js';

const $ = (id) => document.getElementById(id);
const box = $('verify-statement-box');

const fetchPath = mirrorFetch(new URL('..', document.baseURI)); // the mirror's top: checkpoint, tiles

startPage(async (trust, status, seconds) => {
  status.textContent = 'Verifying…';
  const listed = JSON.parse(new TextDecoder().decode(await fetchPath(`statements/${box.dataset.entries}`)));
  if (listed.statement !== box.dataset.statement) {
    throw new LedgerError('the entry list is for another statement', { code: 'wrong_entry', exit: 1 });
  }
  const r = await verifyStatement(fetchPath, trust, listed.statement, listed.index, listed.endorsements);
  document.body.dataset.total = String(r.total);
  return `Checked: the statement and ${(r.checked - 1).toLocaleString()} endorsements are in the log ` +
    `of ${r.size.toLocaleString()} entries and correctly signed; they count ${r.total.toLocaleString()} ` +
    `signatories (${seconds()} s). ${NOT_CHECKED}`;
});
