"""The Post record: the structure stage's output, validated before it is cached or rendered."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ramble2post.errors import InputError
from ramble2post.structure.roles import ROLES

SCHEMA_VERSION = 2  # 2: roles may be empty (gaps), key phrases recorded


class Item(BaseModel):
    model_config = ConfigDict(extra="allow")
    text: str = Field(min_length=1)
    origin: str = Field(pattern="^(speaker|model)$")
    sources: list[int] = Field(min_length=1)
    verified: bool
    note: str | None = None


class Title(BaseModel):
    model_config = ConfigDict(extra="allow")
    text: str = Field(min_length=1)
    origin: str = Field(pattern="^(speaker|model)$")
    sources: list[int]


class Layers(BaseModel):
    """Items per role. Layer 1 always has one; any other role may be empty: the ramble lacks it
    (as far as the role model can tell), and the draft shows the author a note in its place."""

    focus: list[Item] = Field(min_length=1)
    reason: list[Item] = Field(default_factory=list)
    example: list[Item] = Field(default_factory=list)
    analogy: list[Item] = Field(default_factory=list)
    connections: list[Item] = Field(default_factory=list)
    tradeoffs: list[Item] = Field(default_factory=list)


class SentenceRec(BaseModel):
    id: int
    text: str
    segments: list[int]
    start: float
    end: float


class Verification(BaseModel):
    model_config = ConfigDict(extra="allow")
    items: int
    passed: int
    repaired: int
    replaced: int
    flagged: int
    details: list[Any]


class Post(BaseModel):
    model_config = ConfigDict(extra="allow")
    schema_version: int
    transcript_sha256: str
    audio_sha256: str
    title: Title
    description: str
    tags: list[str]
    layers: Layers
    sentences: list[SentenceRec]
    verification: Verification
    llm: dict[str, Any] | None
    prompts: dict[str, str]
    timing: dict[str, Any]
    gaps: list[str] = Field(default_factory=list)  # roles left empty, in layer order
    keyphrases: list[str] = Field(default_factory=list)  # what the talk keeps returning to


def validate_post(d: dict[str, Any]) -> Post:
    """Validate Post JSON: shape, non-empty layers, and every source segment id existing."""
    try:
        post = Post.model_validate(d)
    except ValidationError as e:
        raise InputError(f"post JSON is not valid: {e.error_count()} problems: {e.errors()[:3]}") from e
    seg_ids = {s for sent in post.sentences for s in sent.segments}
    bad = [
        (role, i) for role in ROLES for i, it in enumerate(getattr(post.layers, role)) if not set(it.sources) <= seg_ids
    ]
    if bad:
        raise InputError(f"post items cite unknown segments: {bad}")
    empty = [r for r in ROLES if not getattr(post.layers, r)]
    if "gaps" in d and sorted(post.gaps) != sorted(empty):
        raise InputError(f"post gaps {post.gaps} do not match its empty layers {empty}")
    return post
