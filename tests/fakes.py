"""Test doubles: a scripted LLM, registered through the public backend registry.

``register_fake(name, llm)`` makes ``--llm NAME`` (and ``load_llm(NAME)``) return ``llm``;
nothing here ships in the runtime package.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ramble2post.errors import LLMOutputError
from ramble2post.structure.llm import MAX_TOKENS_DEFAULT, Answer, LLMInfo
from ramble2post.structure.models import register_backend, unregister_backend


class FakeLLM:
    """A scripted LLM for tests: ``enqueue(text)`` answers, ``history`` records questions.

    When the queue is empty, ``responder(question, schema)`` (if set) answers instead.
    ``support(document, claim)`` (if set) is its answer as the faithfulness judge (P("Yes"),
    ``structure.support``); without it the fake judges nothing and its rewrites are not shown.
    """

    def __init__(
        self,
        *,
        n_ctx: int = 4096,
        reuse_prefix: bool = True,
        responder: Callable[[str, dict | None], str] | None = None,
        support: Callable[[str, str], float] | None = None,
    ):
        self.info = LLMInfo(name="fake", path="", sha256="0" * 64, quantization="none", source="fake")
        self.n_ctx = n_ctx
        self.queue: list[str] = []
        self.history: list[dict[str, Any]] = []
        self.responder = responder
        self.support = support
        self.judged: list[tuple[str, str]] = []  # (document, claim) pairs put to it as a judge

    def enqueue(self, *texts: str) -> FakeLLM:
        self.queue.extend(texts)
        return self

    def count_tokens(self, text: str) -> int:
        return max(1, len(text) // 4)  # ~4 characters per token

    def ask(
        self, *, prefix: str, question: str, schema: dict | None = None, max_tokens: int = MAX_TOKENS_DEFAULT
    ) -> Answer:
        self.history.append({"prefix": prefix, "question": question, "schema": schema})
        if self.queue:
            text = self.queue.pop(0)
        elif self.responder is not None:
            text = self.responder(question, schema)
        else:
            raise LLMOutputError("FakeLLM has no queued answer", hint="enqueue() one per question")
        return Answer(text, self.count_tokens(prefix + question), 0, max(1, len(text) // 4), 0.0, 0.0)

    def choice_probabilities(self, *, prefix: str, question: str, options: list[str]) -> list[float]:
        if self.support is None or list(options) != ["Yes", "No"] or "\nClaim: " not in question:
            raise LLMOutputError("FakeLLM gives no answer probabilities")
        doc, _, rest = question.removeprefix("Document: ").partition("\nClaim: ")
        claim = rest.rsplit("\nIs the claim supported", 1)[0]
        self.judged.append((doc, claim))
        p = self.support(doc, claim)
        return [p, 1.0 - p]


@contextmanager
def registered_fake(name: str, llm: FakeLLM) -> Iterator[FakeLLM]:
    """``--llm NAME`` answers with ``llm`` inside the block."""
    register_backend(name, lambda **_kw: llm)
    try:
        yield llm
    finally:
        unregister_backend(name)
