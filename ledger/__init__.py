"""Endorsement Ledger core: the formats, the Merkle tree, signed notes and the verifier.

This package is the pure core. It imports only the Python standard library and
``cryptography`` (``tests/test_import_boundary.py`` enforces this), so that the
standalone verifier ``ledger-verify`` installs with nothing else.

The formats are specified in ``docs/spec.md``.
"""

__version__ = "0.1.0"
