"""The standalone verifier: source readers, trust, the checking pipeline, state files and
the ``ledger-verify`` command.

It runs on the base install (the standard library and ``cryptography``; PyNaCl is used if
present) and imports only :mod:`ledger.core` and :mod:`ledger.durable`.
``docs/design/verifier.md`` describes it.
"""
