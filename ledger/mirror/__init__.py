"""The mirror (``ledger mirror``): a verified static copy of a log in the C2SP tlog-tiles
layout, and the readable static site built from the mirror's own verified replay.

It runs on the base install and imports only :mod:`ledger.core`, :mod:`ledger.durable`
and :mod:`ledger.verify`. ``docs/design/mirror.md`` describes it.
"""
