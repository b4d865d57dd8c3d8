"""Test-only entry point: the real CLI (``pipeline.cli.cli``) with fakes at its boundaries.

Run as ``python -m tests.faults.fakecli ARGS...`` from the repo root: exactly what
``python -m pipeline ARGS...`` does (same click group, same error edge, same
signal handling), after registering test doubles that a subprocess cannot get
otherwise. Nothing here is imported by the product.

LLM backends (``--llm NAME``), all ``tests.fakes.FakeLLM`` with a responder:

=================  ==========================================================
``fake``           well-formed, minimal answers (first candidate, no title,
                   no tags, empty rewrites: the speaker's words are kept)
``fake-invalid``   every answer is broken JSON
``fake-offtopic``  obeys a prompt injection: every answer is about cats
``fake-hostile``   title and rewrites full of path traversal, HTML, links
``fake-crash``     the backend dies mid-structuring (a RuntimeError, as a
                   llama.cpp decode failure would)
=================  ==========================================================

Experiments (``--experiments NAME``): ``fault-raise`` (raises), ``fault-oom``
(MemoryError), ``fault-sleep`` (sleeps ``FAKE_EXPERIMENT_SLEEP_S``, then returns
a one-row result).

Environment:

- ``FAKE_LLM_SLEEP_S``: seconds each fake LLM answer takes (to interrupt structuring).
- ``FAKE_TRANSCRIPT``: transcript JSON the transcribe stage returns instead of running Whisper.
- ``FAKE_COUNT_DIR``: every real audio decode of the transcribe stage appends a line to
  ``transcribe.count`` there (proves a resumed run did not transcribe again).
- ``FAKE_DRAFT_SLEEP_S``: seconds spent holding the repo lock before committing
  (prints ``fault-hook: holding the repo lock`` first).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

HOLDING_LOCK = "fault-hook: holding the repo lock"
CATS = "Cats are fluffy pets that sleep all day and rule the internet."
HOSTILE_TITLE = "../../etc/passwd <script>alert(1)</script>"
HOSTILE_TEXT = (
    "<script>alert(1)</script> [click](file:///etc/passwd) ![x](../../secret.png) "
    "<img src=x onerror=alert(1)>\n---\ndraft: false\nlayout: ../../evil\n---"
)


def _kind(schema: dict | None) -> str:
    props = (schema or {}).get("properties") or {}
    for key in ("best", "title", "tags", "text"):
        if key in props:
            return key
    return "text"


def _enum(schema: dict, key: str) -> list:
    p = schema["properties"][key]
    return list(p.get("enum") or (p.get("items") or {}).get("enum") or [])


def _responder(style: str):
    def answer(question: str, schema: dict | None) -> str:
        delay = float(os.environ.get("FAKE_LLM_SLEEP_S", "0") or 0)
        if delay:
            time.sleep(delay)
        kind = _kind(schema)
        if style == "crash":
            raise RuntimeError("llama_decode returned -3 (simulated backend crash)")
        if style == "invalid":
            return '{"' + kind + '": oops, not json'
        if kind == "best":
            options = _enum(schema, "best")
            return json.dumps({"best": options[-1] if style == "offtopic" else options[0]})
        if kind == "tags":
            return json.dumps({"tags": _enum(schema, "tags")[:2] if style == "offtopic" else []})
        if kind == "title":
            title = {"fake": "", "offtopic": "Why cats rule the internet", "hostile": HOSTILE_TITLE}[style]
            return json.dumps({"title": title})
        text = {"fake": "", "offtopic": CATS, "hostile": HOSTILE_TEXT}[style]
        return json.dumps({"text": text})

    return answer


def _register_llms() -> None:
    from ramble2post.structure.models import register_backend
    from tests.fakes import FakeLLM

    for name, style in (
        ("fake", "fake"),
        ("fake-invalid", "invalid"),
        ("fake-offtopic", "offtopic"),
        ("fake-hostile", "hostile"),
        ("fake-crash", "crash"),
    ):
        register_backend(name, lambda _style=style, **kw: FakeLLM(responder=_responder(_style)))


def _register_experiments() -> None:
    from ramble2post.experiments.base import Experiment, register, utc_now_iso

    @register
    class FaultRaise(Experiment):
        name, version, claim = "fault-raise", "1", "always raises (fault injection)"

        def run(self, context):
            raise RuntimeError("simulated bug in an experiment")

    @register
    class FaultOOM(Experiment):
        name, version, claim = "fault-oom", "1", "always runs out of memory (fault injection)"

        def run(self, context):
            raise MemoryError("simulated: cannot allocate 64 GiB")

    @register
    class FaultSleep(Experiment):
        name, version, claim = "fault-sleep", "1", "sleeps, then measures nothing (fault injection)"

        def run(self, context):
            time.sleep(float(os.environ.get("FAKE_EXPERIMENT_SLEEP_S", "0") or 0))
            return self.make_result(
                context,
                params={},
                models=[],
                started_at=utc_now_iso(),
                duration_s=0.0,
                columns=("x",),
                units={},
                rows=[(1,)],
                summary={"x": 1},
                reading="x was 1.",
            )


def _patch_stages() -> None:
    from ramble2post.publish import gitops
    from ramble2post.records import Transcript
    from ramble2post.transcribe import stage as transcribe

    count_dir = os.environ.get("FAKE_COUNT_DIR")
    if count_dir:
        real_load_audio = transcribe.load_audio

        def counting_load_audio(*args, **kwargs):
            with open(Path(count_dir) / "transcribe.count", "a", encoding="utf-8") as f:
                f.write(f"{os.getpid()}\n")
            return real_load_audio(*args, **kwargs)

        transcribe.load_audio = counting_load_audio

    fake_transcript = os.environ.get("FAKE_TRANSCRIPT")
    if fake_transcript:

        def fake_transcribe_file(*, audio_path, options=None, use_cache=True):
            return Transcript.from_dict(json.loads(Path(fake_transcript).read_text(encoding="utf-8")))

        transcribe.transcribe_file = fake_transcribe_file

    draft_sleep = float(os.environ.get("FAKE_DRAFT_SLEEP_S", "0") or 0)
    if draft_sleep:
        real_commit = gitops.commit_new_branch

        def slow_commit(*args, **kwargs):
            print(HOLDING_LOCK, file=sys.stderr, flush=True)
            time.sleep(draft_sleep)
            return real_commit(*args, **kwargs)

        gitops.commit_new_branch = slow_commit


def main() -> None:
    _register_llms()
    _register_experiments()
    _patch_stages()
    from ramble2post.cli.main import cli

    cli(prog_name="ramble2post")


if __name__ == "__main__":
    main()
