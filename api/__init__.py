"""The ledger HTTP service (FastAPI) and its storage."""
