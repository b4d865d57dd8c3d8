"""The Post record: the structure stage's output, validated before it is cached or rendered.

The structure stage returns a ``Post`` (pydantic models, frozen): the publish stage reads its
typed fields. JSON only at the edges: ``Post.to_dict()`` gives back exactly the keys the record
was built from (the stage cache, ``ramble2post structure -o``, ``source/post.json`` in the blog
repo), ``Post.from_dict()`` validates such JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ramble2post.errors import InputError
from ramble2post.structure.roles import ROLES

SCHEMA_VERSION = 2  # 2: roles may be empty (gaps), key phrases recorded


class Item(BaseModel):
    """One passage of a layer (one to four consecutive sentences): the speaker's words, or the
    model's checked against them."""

    model_config = ConfigDict(extra="allow", frozen=True)
    text: str = Field(min_length=1)
    origin: str = Field(pattern="^(speaker|model)$")  # "speaker" | "model"
    sources: list[int] = Field(min_length=1)  # transcript segment ids
    verified: bool
    note: str | None = None  # why verification flagged it
    sentences: list[int] | None = None  # cleaned sentence ids (the structure stage records them)
    # "confident": shown plain; "likely": the evidence is moderate, shown as a guess for the author to check
    tier: str = Field(default="confident", pattern="^(confident|likely)$")


class Hint(BaseModel):
    """For a role left empty: the passage likeliest to serve it, below the bar of a guess. Shown
    inside the author note as a place to start, never as the role's item."""

    model_config = ConfigDict(extra="allow", frozen=True)
    text: str = Field(min_length=1)  # the speaker's cleaned words
    sources: list[int] = Field(min_length=1)  # transcript segment ids
    sentences: list[int]  # cleaned sentence ids
    q: float = Field(ge=0.0, le=1.0)  # the calibrated probability that an editor accepts it in the role


class Title(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    text: str = Field(min_length=1)
    origin: str = Field(pattern="^(speaker|model)$")
    sources: list[int]


class Layers(BaseModel):
    """Items per role. Layer 1 always has one; any other role may be empty: the ramble lacks it
    (as far as the role model can tell), and the draft shows the author a note in its place."""

    model_config = ConfigDict(frozen=True)
    focus: list[Item] = Field(min_length=1)
    reason: list[Item] = Field(default_factory=list)
    example: list[Item] = Field(default_factory=list)
    analogy: list[Item] = Field(default_factory=list)
    connections: list[Item] = Field(default_factory=list)
    tradeoffs: list[Item] = Field(default_factory=list)

    def of(self, role: str) -> list[Item]:
        """The items of ``role`` (one of ``ROLES``)."""
        items: list[Item] = getattr(self, role)
        return items


class SentenceRec(BaseModel):
    model_config = ConfigDict(frozen=True)
    id: int
    text: str
    segments: list[int]
    start: float
    end: float


class Verification(BaseModel):
    """Counts of the verification step (``details``: one entry per item it did not pass)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    items: int
    passed: int
    repaired: int
    replaced: int
    flagged: int
    details: list[Any]


class Post(BaseModel):
    """The structure stage's output. Fields in the order the stage writes them (``to_dict`` keeps it)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    schema_version: int
    transcript_sha256: str
    audio_sha256: str
    title: Title
    title_suggestion: str | None = None  # the model's title when it passed every check: offered, not used
    description: str
    tags: list[str]
    layers: Layers
    gaps: list[str] = Field(default_factory=list)  # roles left empty, in layer order
    hints: dict[str, Hint] = Field(default_factory=dict)  # gap role -> the closest passage (author note only)
    keyphrases: list[str] = Field(default_factory=list)  # what the talk keeps returning to
    jargon: list[dict[str, Any]] = Field(default_factory=list)  # misheard terms fixed from context (jargon.py)
    sentences: list[SentenceRec]
    verification: Verification
    llm: dict[str, Any] | None  # the model's identity (name, path, sha256, quantization, source, chat, n_ctx)
    prompts: dict[str, str]  # prompt name -> version
    timing: dict[str, Any]  # seconds per step, token counts and rates: an honest free-form map
    selection: dict[str, Any] | None = None  # role candidates, probabilities and the LLM log (diagnostics)

    def to_dict(self) -> dict[str, Any]:
        """The Post JSON: the keys it was built or read from, in the stage's order."""
        return self.model_dump(exclude_unset=True)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Post:
        """Validate Post JSON (``validate_post``); InputError (one line) when it is not one."""
        return validate_post(d)


def validate_post(d: Mapping[str, Any]) -> Post:
    """Validate Post JSON: shape, non-empty layers, and every source segment id existing."""
    try:
        post = Post.model_validate(d)
    except ValidationError as e:
        raise InputError(f"post JSON is not valid: {e.error_count()} problems: {e.errors()[:3]}") from e
    seg_ids = {s for sent in post.sentences for s in sent.segments}
    bad = [(role, i) for role in ROLES for i, it in enumerate(post.layers.of(role)) if not set(it.sources) <= seg_ids]
    if bad:
        raise InputError(f"post items cite unknown segments: {bad}")
    empty = [r for r in ROLES if not post.layers.of(r)]
    if "gaps" in d and sorted(post.gaps) != sorted(empty):
        raise InputError(f"post gaps {post.gaps} do not match its empty layers {empty}")
    if not set(post.hints) <= set(empty):
        raise InputError(f"post hints {sorted(post.hints)} are for roles that have items (only gaps take a hint)")
    if any(not set(h.sources) <= seg_ids for h in post.hints.values()):
        raise InputError("post hints cite unknown segments")
    return post
