"""Endorsement Ledger: a public, verifiable ledger of signed endorsements.

The package is in layers, each importing only those below it:

- :mod:`ledger.core`: the formats, proofs, rules and in-memory state (no I/O);
- :mod:`ledger.durable`: the one crash-safe file writer;
- :mod:`ledger.verify`: the standalone verifier and ``ledger-verify``;
- :mod:`ledger.mirror`: the mirror and its static site.

All of it imports only the Python standard library and ``cryptography``
(``tests/test_import_boundary.py``), so that the base install verifies and mirrors.
The formats are specified in ``docs/spec.md``.
"""

__version__ = "0.1.0"
