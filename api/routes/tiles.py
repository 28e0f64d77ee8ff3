"""The C2SP tlog-tiles read paths, at the root of the service.

- ``GET /checkpoint``: the newest signed checkpoint (``text/plain; charset=utf-8``),
  cached for a few seconds only;
- ``GET /tile/<L>/<N>[.p/<W>]``: Merkle tree tiles (concatenated 32-byte hashes);
- ``GET /tile/entries/<N>[.p/<W>]``: entry bundles (each entry as a big-endian
  uint16 length, then its bytes).

Tiles and bundles are ``application/octet-stream``. A full tile or bundle never
changes: ``Cache-Control: public, max-age=31536000, immutable``. A partial one of
width W never changes either, but the log may stop serving it once the full one
exists (tlog-tiles, "Partial Tiles"), so it is cached for a minute. Any tile the
committed tree does not hold yet answers 404 with ``Cache-Control: no-store``, so
that no cache remembers its absence (every problem answer is ``no-store``). Paths are parsed with
``ledger.core.tiles.parse_tile_path``, which accepts one spelling only: a
non-canonical path (``tile/0/x000/001``, ``tile/0/001.p/0``) answers 400.
Compression (gzip) is negotiated by the application's middleware.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response
from fastapi.concurrency import run_in_threadpool

from api.problems import ProblemError
from api.routes.deps import IMMUTABLE, SHORT, AppContext, ContextDep
from api.routes.schemas import EX_CHECKPOINT, problem_responses
from ledger.core.errors import FormatError
from ledger.core.tiles import (
    TILE_HEIGHT,
    TILE_WIDTH,
    Tile,
    encode_bundle,
    parse_tile_path,
    read_tile_data,
)

router = APIRouter(tags=["tlog-tiles"])

OCTETS = "application/octet-stream"
TEXT = "text/plain; charset=utf-8"
PARTIAL = "public, max-age=60"
#: The canonical spellings parse_tile_path accepts (documentation only: a path that
#: does not match answers 400 ``malformed`` from the parser, not a validation error).
TILE_PATH_PATTERN = (
    r"^(entries|[0-9]|[1-5][0-9]|6[0-3])/"
    r"(x(00[1-9]|0[1-9][0-9]|[1-9][0-9]{2})/(x[0-9]{3}/){0,4})?[0-9]{3}"
    r"(\.p/([1-9]|[1-9][0-9]|1[0-9]{2}|2[0-4][0-9]|25[0-5]))?$"
)
TilePath = Annotated[
    str,
    Path(
        description="`<L>/<N>[.p/<W>]` or `entries/<N>[.p/<W>]`.",
        json_schema_extra={"pattern": TILE_PATH_PATTERN},
        examples=["0/000", "1/x001/234.p/7", "entries/000.p/8"],
    ),
]


@router.get(
    "/checkpoint",
    summary="The newest signed checkpoint",
    response_class=Response,
    responses={
        200: {
            "content": {"text/plain": {"example": EX_CHECKPOINT}},
            "description": "A C2SP signed checkpoint (tlog-checkpoint).",
        },
        **problem_responses(503),
    },
)
def get_checkpoint(ctx: ContextDep) -> Response:
    """The log's newest checkpoint, a C2SP signed note (origin, size, base64 root)."""
    checkpoint = ctx.storage.head().checkpoint
    if not checkpoint:
        raise ProblemError(
            "unavailable",
            "The log has not signed a checkpoint yet.",
            status=503,
            headers={"Retry-After": "5"},
        )
    return Response(checkpoint, media_type=TEXT, headers={"Cache-Control": SHORT})


def tile_end(tile: Tile) -> int:
    """The tree size from which ``tile`` (at its width) exists."""
    first = tile.n * TILE_WIDTH + tile.width
    return first if tile.is_entries else first << (TILE_HEIGHT * tile.level)


def _read_tile(ctx: AppContext, tile: Tile) -> bytes:
    if tile.is_entries:
        start = tile.n * TILE_WIDTH
        return encode_bundle(ctx.storage.read_entries(start, start + tile.width))
    return read_tile_data(tile, ctx.storage)


@router.get(
    "/tile/{path:path}",
    summary="A Merkle tree tile or an entry bundle",
    response_class=Response,
    responses={
        200: {
            "content": {OCTETS: {}},
            "description": "Tile hashes (32 bytes each) or an entry bundle.",
        },
        **problem_responses(400, 404),
    },
)
async def get_tile(path: TilePath, ctx: ContextDep) -> Response:
    """``tile/<L>/<N>[.p/<W>]`` or ``tile/entries/<N>[.p/<W>]`` (C2SP tlog-tiles).

    `<N>` is written in 3-digit groups, `x`-prefixed but the last
    (`tile/0/x001/234` is tile 1234 of level 0).
    """
    try:
        tile = parse_tile_path("tile/" + path)
    except FormatError as e:
        if e.field == "n":  # well spelled, but past any tree a log can ever have
            raise ProblemError(
                "not_found", f"No log has the tile {path}: {e}.", status=404
            ) from None
        raise ProblemError(
            "malformed",
            f"Not a tlog-tiles path: {e}.",
            status=400,
        ) from None
    size = (await run_in_threadpool(ctx.storage.head)).size
    if tile_end(tile) > size:
        what = "entry bundle" if tile.is_entries else "tile"
        raise ProblemError(
            "not_found",
            f"The log (size {size}) does not have the {what} {tile.path} yet.",
            status=404,
        )
    data = await run_in_threadpool(_read_tile, ctx, tile)
    cache = PARTIAL if tile.is_partial else IMMUTABLE
    return Response(data, media_type=OCTETS, headers={"Cache-Control": cache})


# HEAD answers as GET without a body (uvicorn drops it); kept out of the schema, where
# it would repeat the GET operations.
router.add_api_route("/checkpoint", get_checkpoint, methods=["HEAD"], include_in_schema=False)
router.add_api_route("/tile/{path:path}", get_tile, methods=["HEAD"], include_in_schema=False)

__all__ = ["router", "tile_end"]
