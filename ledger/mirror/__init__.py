"""The mirror (``ledger mirror``): a verified static copy of a log in the C2SP tlog-tiles
layout, and the readable static site built from the mirror's own verified replay.

- :mod:`ledger.mirror.sync`: :class:`~ledger.mirror.sync.Mirror`, one sync: fetch,
  verify (``ledger.verify``), publish; forks refused with evidence.
- :mod:`ledger.mirror.layout`: the tlog-tiles paths of a tree and the crash-safe
  :class:`~ledger.mirror.layout.LayoutWriter` (also used by ``api/publish.py``).
- :mod:`ledger.mirror.staging`: the source as the mirror reads it, every file staged.
- :mod:`ledger.mirror.directory`: the private ``.ledger-mirror/``: lock, state, evidence.
- :mod:`ledger.mirror.site`: the static site, from the state the sync verified.

It runs on the base install and imports only :mod:`ledger.core`, :mod:`ledger.durable`
and :mod:`ledger.verify`; every file it writes goes through :mod:`ledger.durable`.
"""
