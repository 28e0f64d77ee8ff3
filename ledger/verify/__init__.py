"""The standalone verifier: source readers (``source``), trust (``trust``), the procedure
(``verifier``, fed by ``pipeline``, with ``tiletree`` and ``forks``), receipts
(``receipts``), state files (``statefile``, ``statecodec``) and the ``ledger-verify``
command (``cli``).

It runs on the base install (the standard library and ``cryptography``; PyNaCl is used if
present) and imports only :mod:`ledger.core` and :mod:`ledger.durable`.
``docs/design/verifier.md`` describes it.
"""
