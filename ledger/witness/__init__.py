"""The witness: ``ledger witness serve`` (C2SP tlog-witness, tlog-cosignature).

A witness cosigns a log's checkpoint only if it is consistent with the latest one it
cosigned for that log, so that a log cannot show two histories to two audiences
without a witness refusing one. With ``--audit`` it also replays every new entry
against the semantic rules and cosigns only a log that is consistent *and* lawful.

Modules: :mod:`ledger.witness.store` (SQLite: per origin the latest cosigned tree,
check-and-persist in one transaction; kept refusals and evidence),
:mod:`ledger.witness.service` (an add-checkpoint body in, an answer out),
:mod:`ledger.witness.server` (HTTP) and :mod:`ledger.witness.audit` (the auditing
witness). The protocol itself (request and answer formats, the decision) is pure and
lives in :mod:`ledger.core.witness`.

Decision: the witness is part of the base install (``ledger/``: the standard library's
``http.server`` and ``sqlite3``, and ``cryptography``), not of the FastAPI service
under ``api/``. A witness operator runs someone else's log's checker, often on a small
machine; it should not need our server stack (FastAPI, SQLModel, PostgreSQL drivers),
and the less code holds a witness key the better. Two endpoints with tiny bodies do not
need a framework. The key file is read by the CLI (``keys/``), which hands the key in.
"""
