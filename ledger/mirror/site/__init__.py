"""The mirror's static, human-readable site, built from the mirror's own verified replay.

:mod:`ledger.mirror.site.build` decides which pages there are and writes them
(crash-safely, incrementally), :mod:`ledger.mirror.site.pages` renders them from
the HTML templates (``templates/``) and the stylesheet (``assets/site.css``)
shipped as package data, and :mod:`ledger.mirror.site.endorsements` keeps the one
thing the pages show that the verifier's state does not: when each active
endorsement was logged.
"""
