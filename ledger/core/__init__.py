"""The pure core: formats, proofs, signed notes, checkpoints, receipts, policies, fork
evidence, records, entries, the semantic rules and the in-memory state.

It imports only the standard library and ``cryptography`` and does no file or network
I/O and no presentation; ``tests/test_import_boundary.py`` and ``tests/test_layers.py``
enforce both. The formats are specified in ``docs/spec.md``; ``docs/design/core.md``
says what each module owns.
"""
