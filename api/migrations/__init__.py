"""Alembic migrations of the service's database (run by ``api.storage.migrate``).

This is a package, and so is ``versions``, so that an installed wheel carries the
migration scripts and can upgrade a database in place.
"""
