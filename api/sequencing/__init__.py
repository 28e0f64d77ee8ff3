"""Sequencing: from a checked record to its answer, after commit and publication.

- ``api.sequencing.queue``: the :class:`~api.sequencing.queue.Sequencer`, the one
  owner of the queue (its contract, MUST-style, is at the top of that module);
- ``api.sequencing.batch``: the appender contract (a ``Batch`` in, one outcome per
  record out: ``Appended | Rejected``) and the in-thread appender;
- ``api.sequencing.child``: the appender in a child process (off the serving
  process's GIL).

The life of a record: the route parses it and checks its signers
(``api.routes.records``) → ``Sequencer.submit_on_loop`` → a batch → the appender
verifies the Ed25519 signatures, the log writer appends in one transaction
(``api.storage.base.LogWriter``), the checkpoint publisher signs and publishes the
new checkpoint (``api.checkpoints``) → the outcome → the answer and its receipt
(``api.answers``).
"""
