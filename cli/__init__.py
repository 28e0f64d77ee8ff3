"""The ``ledger`` command: the service, the signatory CLI and the mirror."""
