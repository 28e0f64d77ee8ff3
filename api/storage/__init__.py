"""Storage of the log: one small interface (``api.storage.base``), one SQLModel implementation."""
