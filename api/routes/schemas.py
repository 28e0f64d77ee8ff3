"""Response and request models of the HTTP API (what clients see, apart from storage types).

Hashes and ids are lowercase hex (64 characters), keys and entry bytes base64, as
in docs/spec.md. The examples are those of the spec's example log.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# docs/spec.md, "Worked examples".
EX_ORIGIN = "ledger.example.org/paris-call"
EX_VKEY = "ledger.example.org/paris-call+862f1e68+AWzr2KAlxRMQXlnjRueosC84ZigS4Xy0UvIsmb9bl/Jg"
EX_ROOT = "f366c4f6aa2d776e43fa48c4370c81b02dadcb71caffc2a15af351113e00ff83"
EX_CHECKPOINT = (
    "ledger.example.org/paris-call\n8\n82bE9qotd25D+kjENwyBsC2ty3HK/8KhWvNRET4A/4M=\n\n"
    "— ledger.example.org/paris-call hi8eaJ0p0GVhQKj4WEnfPD4JC7PLd3HTlvj3V0t/7E4yJqmR/WvNB3bVH"
    "QT1PdfUV2pWsq4xhIfhYpvFP6RcagMDgAQ=\n"
)
EX_LEAF = "d8ba1fa4e084e0badeaf9d3c635fea1b8115fe876f341a94a7670d5e627ea284"
EX_RECORD_ID = "a7bc0aaafd8ca034e655d83a7fc00b48f276522da11c7ed3b1e08fd3f538a41b"
EX_STATEMENT = "250955a4fe095a3f874b14596c4b86b5824a486e71a6e8a0d6ca2176fdd18b3d"
EX_SIGNATORY = "1b4262fa20c384c9882264c6d19c93a7ae054f058035fb2e0ee47882e35d2586"
EX_AUTHOR_1 = "343cfa0d397aea2cbdba93e2bf05e834632c59da0001ae63df4259b34d979e03"
EX_AUTHOR_2 = "a51f3d2f4e5fcc8c36840d49765ef212ed7edbe330259d83d569dd83c03fd97b"
EX_ENDORSEMENT = (
    "endorsement-ledger/v1 endorse\n"
    "log ledger.example.org/paris-call\n"
    "signed_at 1767232800\n"
    "signatory 1b4262fa20c384c9882264c6d19c93a7ae054f058035fb2e0ee47882e35d2586\n"
    "statement 250955a4fe095a3f874b14596c4b86b5824a486e71a6e8a0d6ca2176fdd18b3d\n"
    "comment Signed on behalf of myself only.\n"
    "\n"
    "sig +RtwuooshWvZedemElu3WT64ABk+bUJMx0dj61zA3ss= lD+Jqu/UX6s2mqQy4VwNa+a+wH/q1bWfIT+E9ctXS"
    "gGrEx1+i0aGHMm1zI9UpQ+z4DkZdNf4DANufdzedGfbDQ==\n"
)
EX_RECEIPT = (
    "c2sp.org/tlog-proof@v1\nindex 4\n"
    "vpldhA2l7oF80K047WBn65rwEOiq5cJ6p85WRvElDrc=\n"
    "kMVTbeY/lolv0Xa+jVcrItgNZdtCuvUJHOeZV9WxG44=\n"
    "1rNohfBLOgyJXodtL4YQeKCcM3AApcu1v3GjhJACVyQ=\n"
    "\n" + EX_CHECKPOINT
)
EX_TALLIES = {"state": 1, "company": 0, "civil-society": 2, "individual": 0, "other": 0}
_HEX64 = r"^[0-9a-f]{64}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- requests ---------------------------------------------------------------------


class RecordSubmission(_Model):
    """A record wrapped in JSON (the same bytes may be posted as ``text/plain``)."""

    record: str = Field(description="The record text: body, empty line, signature lines.")

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"record": EX_ENDORSEMENT}]}
    )


class BatchSubmission(_Model):
    """Many records at once (bulk import); a bare JSON list of record texts also works."""

    records: list[str] = Field(description="Record texts, each as for POST /api/v1/records.")

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"records": [EX_ENDORSEMENT]}]}
    )


# --- records ----------------------------------------------------------------------


class RecordAccepted(_Model):
    """A record in the log, with its receipt."""

    index: int = Field(description="The entry's index in the log.", examples=[4])
    leaf_hash: str = Field(
        description="RFC 9162 leaf hash of the entry, hex.", pattern=_HEX64, examples=[EX_LEAF]
    )
    record_id: str = Field(
        description="SHA-256 of the record's body, hex.", pattern=_HEX64, examples=[EX_RECORD_ID]
    )
    existing: bool = Field(
        description="True when an identical record was already in the log (answer 200).",
        examples=[False],
    )
    entry: str = Field(description="The entry bytes (header and record), base64.")
    receipt: str = Field(
        description="C2SP tlog-proof of the entry against `checkpoint`.", examples=[EX_RECEIPT]
    )
    checkpoint: str = Field(
        description="The signed checkpoint the receipt proves against.", examples=[EX_CHECKPOINT]
    )


class BatchItem(_Model):
    """The outcome for one record of a batch, in the order submitted."""

    status: int = Field(
        description="201 appended, 200 already in the log, otherwise the problem's HTTP status.",
        examples=[201],
    )
    index: int | None = Field(default=None, examples=[4])
    leaf_hash: str | None = Field(default=None, examples=[EX_LEAF])
    record_id: str | None = Field(default=None, examples=[EX_RECORD_ID])
    receipt: str | None = Field(
        default=None, description="Only with ?receipts=true (see GET /api/v1/receipts/{index})."
    )
    code: str | None = Field(
        default=None, description="The problem code of a refused record.", examples=[None]
    )
    detail: str | None = Field(default=None, description="Why the record was refused.")


class BatchResult(_Model):
    results: list[BatchItem]
    checkpoint: str = Field(
        description="A signed checkpoint that includes every appended record of the batch.",
        examples=[EX_CHECKPOINT],
    )


# --- log ------------------------------------------------------------------------------


class LogInfo(_Model):
    origin: str = Field(examples=[EX_ORIGIN])
    vkey: str = Field(description="The log's signed-note verifier key.", examples=[EX_VKEY])
    size: int = Field(description="Entries in the log.", examples=[8])
    root: str = Field(description="Root hash of the tree, hex.", examples=[EX_ROOT])
    checkpoint: str = Field(description="The latest signed checkpoint.", examples=[EX_CHECKPOINT])


class SignatureInfo(_Model):
    public_key: str = Field(description="Base64 Ed25519 public key.")
    key_hash: str = Field(description="SHA-256 of the key, hex.", pattern=_HEX64)


class EntryInfo(_Model):
    """One entry: its bytes and what they say."""

    index: int = Field(examples=[4])
    leaf_hash: str = Field(pattern=_HEX64, examples=[EX_LEAF])
    prev: str = Field(description="Leaf hash of the previous entry, hex.", pattern=_HEX64)
    time_ms: int = Field(
        description="Integration time, Unix milliseconds.", examples=[1767232801234]
    )
    entry: str = Field(description="The entry bytes, base64.")
    record: str = Field(description="The record text, as submitted.", examples=[EX_ENDORSEMENT])
    record_id: str = Field(pattern=_HEX64, examples=[EX_RECORD_ID])
    type: str = Field(description="The record type.", examples=["endorse"])
    fields: dict[str, Any] = Field(
        description="The body's fields as the record spells them (statement text decoded).",
        examples=[
            {
                "log": EX_ORIGIN,
                "signed_at": 1767232800,
                "signatory": EX_SIGNATORY,
                "statement": EX_STATEMENT,
                "comment": "Signed on behalf of myself only.",
            }
        ],
    )
    signatures: list[SignatureInfo]


class InclusionProof(_Model):
    index: int = Field(examples=[4])
    tree_size: int = Field(examples=[8])
    leaf_hash: str = Field(pattern=_HEX64, examples=[EX_LEAF])
    root: str = Field(description="Root of the tree of `tree_size`, hex.", examples=[EX_ROOT])
    proof: list[str] = Field(description="RFC 9162 inclusion path, base64, leaf upwards.")


class ConsistencyProof(_Model):
    old_size: int = Field(examples=[4])
    new_size: int = Field(examples=[8])
    old_root: str = Field(pattern=_HEX64)
    new_root: str = Field(pattern=_HEX64, examples=[EX_ROOT])
    proof: list[str] = Field(description="RFC 9162 consistency proof, base64.")


# --- projection ---------------------------------------------------------------------


class Tally(_Model):
    total: int = Field(description="Active endorsements.", examples=[3])
    by_kind: dict[str, int] = Field(
        description="Active endorsements by the kind each signatory declared.",
        examples=[EX_TALLIES],
    )


class AuthorInfo(_Model):
    signatory: str = Field(pattern=_HEX64, examples=[EX_AUTHOR_1])
    name: str | None = Field(default=None, examples=["Open Example Foundation"])
    kind: str | None = Field(default=None, examples=["civil-society"])


class StatementSummary(_Model):
    statement: str = Field(description="Statement id, hex.", examples=[EX_STATEMENT])
    title: str = Field(examples=["Call for Verifiable Endorsements"])
    authors: list[str] = Field(examples=[[EX_AUTHOR_1, EX_AUTHOR_2]])
    index: int = Field(description="Index of the statement's entry.", examples=[3])
    tally: Tally


class StatementDetail(StatementSummary):
    text: str = Field(description="The full statement text.")
    author_details: list[AuthorInfo]


class Page(_Model):
    offset: int = Field(examples=[0])
    limit: int = Field(examples=[100])
    next_offset: int | None = Field(
        description="Offset of the next page, or null on the last page.", examples=[None]
    )


class StatementList(Page):
    items: list[StatementSummary]


class EndorsementInfo(_Model):
    signatory: str = Field(pattern=_HEX64, examples=[EX_SIGNATORY])
    name: str = Field(examples=["Example Ministry of Digital Affairs"])
    kind: str = Field(examples=["state"])
    country: str | None = Field(default=None, examples=["FR"])
    domain: str | None = Field(default=None, examples=["example.gouv.fr"])
    index: int = Field(description="Index of the endorsement's entry.", examples=[4])
    comment: str | None = Field(default=None, examples=["Signed on behalf of myself only."])


class EndorsementList(Page):
    statement: str = Field(pattern=_HEX64, examples=[EX_STATEMENT])
    items: list[EndorsementInfo]


class SignatoryInfo(_Model):
    signatory: str = Field(description="Signatory id, hex.", examples=[EX_SIGNATORY])
    name: str = Field(examples=["Open Example Foundation"])
    kind: str = Field(examples=["civil-society"])
    country: str | None = Field(default=None, examples=["NL"])
    domain: str | None = Field(default=None, examples=["example.org"])
    index: int = Field(description="Index of the registration entry.", examples=[2])
    current_key: str = Field(description="Base64 of the key in force.")
    active: bool = Field(description="False once its current key was revoked.")
    keys: list[str] = Field(description="Key hashes of every key it has had, oldest first.")


class SignatoryList(_Model):
    query: str
    items: list[SignatoryInfo]


class Alive(_Model):
    status: str = Field(examples=["ok"])


class Health(_Model):
    status: str = Field(examples=["ok"])
    size: int = Field(examples=[8])


class Problem(BaseModel):
    """RFC 9457 problem details; ``code`` is the stable machine-readable name."""

    type: str = Field(examples=["urn:endorsement-ledger:problem:already_endorsed"])
    title: str = Field(examples=["Already endorsed"])
    status: int = Field(examples=[409])
    detail: str = Field(
        examples=["entry 12: field 'statement': signatory already endorses this statement"]
    )
    code: str = Field(examples=["already_endorsed"])

    model_config = ConfigDict(extra="allow")


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for problem+json answers."""
    return {
        s: {
            "model": Problem,
            "content": {"application/problem+json": {}},
            "description": _DESCRIPTIONS.get(s, "A problem."),
        }
        for s in statuses
    }


_DESCRIPTIONS = {
    400: "Malformed request or record (`malformed`, `malformed_json`, `invalid_parameter`).",
    404: "No such resource (`not_found`).",
    409: "The record conflicts with the log's state (`already_endorsed`, `already_registered`, "
    "`not_endorsed`, `replay`, `key_reused`, `already_revoked`, `duplicate`).",
    413: "Too large (`entry_too_large`, `body_too_large`, `too_many_records`).",
    415: "Unsupported media type (`unsupported_media_type`).",
    422: "Well-formed but refused: signatures (`bad_signature`, `missing_signature`...) or rules "
    "(`wrong_log`, `clock_skew`, `too_old`, `unknown_signatory`, `unknown_statement`, "
    "`key_revoked`, `key_rotated`, `wrong_key`, `unknown_key`); or invalid parameters "
    "(`invalid_request`).",
    429: "Rate limited (`rate_limited`), with Retry-After.",
    503: "Overloaded (`overloaded`), with Retry-After.",
}
