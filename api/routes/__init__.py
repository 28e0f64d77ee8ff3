"""The routes of the HTTP API, one module per area; ``api.app`` mounts them."""

from api.routes import health, log, records, statements, tiles

ROUTERS = (records.router, tiles.router, log.router, statements.router, health.router)

__all__ = ["ROUTERS"]
