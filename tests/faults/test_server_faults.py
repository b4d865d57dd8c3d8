"""A model the user already serves: a real llama-cpp-python OpenAI-compatible server on 127.0.0.1,
and servers that fail (refused, hanging, HTTP 500, not JSON, unknown model, context too small).

Every fault gives exit != 0 with one ``Error:`` line (or a recorded fallback to the speaker's
words) and leaves the blog repo exactly as it was.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, SAMPLE_1MIN
from tests.faults.helpers import (
    FAST,
    assert_clean_failure,
    assert_success,
    assert_unchanged,
    branches,
    git,
    make_blog,
    run_cli,
    snapshot,
    warm_home,
)

SERVER_START_S = 120  # s; loading the 135M GGUF takes a few seconds, a busy CI runner more


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _smollm2() -> Path:
    from ramble2post.structure.llm import _smollm2_path

    return _smollm2_path()


@contextlib.contextmanager
def serve(gguf: Path, *, alias: str, n_ctx: int = 2048):
    """``python -m llama_cpp.server`` with ``gguf`` on 127.0.0.1 (a free port): yields its /v1 URL."""
    pytest.importorskip("uvicorn", reason="llama-cpp-python[server] extra not installed")
    pytest.importorskip("sse_starlette", reason="llama-cpp-python[server] extra not installed")
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "server.log"  # a file: a full pipe would block the server
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", alias]
            + ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", "1"]
            + ["--verbose", "false"],
            stdout=subprocess.DEVNULL,
            stderr=log.open("w"),
        )
        url = f"http://127.0.0.1:{port}/v1"
        deadline = time.monotonic() + SERVER_START_S
        try:
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/models", timeout=2) as r:
                        json.loads(r.read())
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        pytest.fail(f"llama_cpp.server did not start: {log.read_text()[-2000:]}")
                    time.sleep(0.5)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(scope="module")
def llama_server():
    """The bundled SmolLM2 GGUF served with a 2048-token context."""
    with serve(_smollm2(), alias="smollm2") as url:
        yield url


class _Fake(http.server.BaseHTTPRequestHandler):
    mode = "500"

    def log_message(self, *args):  # quiet
        pass

    def _send(self, code: int, body: bytes, kind: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _answer(self) -> None:
        models = self.path.endswith("/models")
        if self.mode == "hang":
            time.sleep(30)
            return
        if self.mode == "500" or (self.mode == "chat-500" and not models):
            return self._send(500, b'{"error": {"message": "CUDA error: out of memory"}}')
        if self.mode == "html" or (self.mode == "chat-html" and not models):
            return self._send(200, b"<html><body>Welcome to nginx!</body></html>", "text/html")
        self._send(200, json.dumps({"object": "list", "data": [{"id": "m", "object": "model"}]}).encode())

    def do_GET(self):  # noqa: N802 - http.server's name
        self._answer()

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer()


@pytest.fixture
def fake_server():
    servers = []

    def start(mode: str) -> str:
        handler = type("Handler", (_Fake,), {"mode": mode})
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}/v1"

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def _main_run(warm, tmp_path, *llm_args: str, env: dict | None = None):
    """The main command on the 1-minute sample (transcript cached) into a fresh blog repo."""
    home = warm_home(warm, tmp_path / "home")
    blog = make_blog(tmp_path / "blog")
    before, refs = snapshot(blog), branches(blog)
    r = run_cli([SAMPLE_1MIN, *FAST, "--blog-repo", blog, *llm_args], home=home, fake=False, env=env)
    return r, blog, before, refs


# ------------------------------------------------------------------ the real server


@pytest.mark.slow
def test_main_command_through_a_served_model(warm, tmp_path, llama_server):
    r, blog, _before, refs = _main_run(warm, tmp_path, "--llm", "smollm2", "--llm-url", llama_server)
    assert_success(r)
    (branch,) = set(branches(blog)) - set(refs)
    (md,) = [f for f in git(blog, "diff", "--name-only", "main", branch).split() if f.endswith(".md")]
    text = git(blog, "show", f"{branch}:{md}")
    assert "smollm2" in text and f"served by the OpenAI-compatible server at {llama_server}" in text


@pytest.mark.slow
def test_structure_through_a_spec_string_records_the_server(warm, tmp_path, llama_server):
    out = tmp_path / "post.json"
    r = run_cli(
        ["structure", warm.transcript, "--llm", f"openai:{llama_server}/smollm2", "-o", out], home=warm.home, fake=False
    )
    assert_success(r)
    post = json.loads(out.read_text())
    assert post["llm"]["name"] == "smollm2" and post["llm"]["source"] == f"server:{llama_server}"
    assert post["selection"]["llm_log"] and not any("error" in e for e in post["selection"]["llm_log"])


@pytest.mark.slow
def test_a_transcript_longer_than_the_servers_context_is_asked_in_sections(warm, tmp_path, llama_server):
    """13 minutes of talk (~4,000 tokens) against a 2,048-token server that does not report its context."""
    transcript = REPO_ROOT / "tests" / "data" / "structure_gold" / "explain-format" / "transcript.json"
    out = tmp_path / "post.json"
    args = ["structure", transcript, "--llm", f"openai:{llama_server}/smollm2", "--context", "full"]
    r = run_cli([*args, "--llm-budget", "30", "-o", out], home=warm.home, fake=False)
    assert_success(r)
    post = json.loads(out.read_text())
    resections = [e for e in post["selection"]["llm_log"] if "resectioned" in e]
    assert resections and resections[0]["n_ctx"] == 2048
    assert post["timing"]["sections"] > 1 and post["llm"]["n_ctx"] == 2048


@pytest.mark.slow
def test_a_model_name_the_server_does_not_have(warm, tmp_path, llama_server):
    r, blog, before, _ = _main_run(warm, tmp_path, "--llm", "qwen2.5:7b", "--llm-url", llama_server)
    line = assert_clean_failure(r, contains="has no model 'qwen2.5:7b'", code=4)
    assert "smollm2" in line
    assert_unchanged(blog, before)


# ------------------------------------------------------------------ servers that fail


def test_connection_refused(warm, tmp_path):
    url = f"http://127.0.0.1:{_free_port()}/v1"
    r, blog, before, _ = _main_run(warm, tmp_path, "--llm", f"openai:{url}/m")
    assert_clean_failure(r, contains=f"cannot reach the LLM server at {url}", code=4)
    assert_unchanged(blog, before)


def test_a_server_that_hangs_times_out(warm, tmp_path, fake_server):
    url = fake_server("hang")
    t0 = time.monotonic()
    r, blog, before, _ = _main_run(warm, tmp_path, "--llm", f"openai:{url}/m", env={"RAMBLE2POST_LLM_TIMEOUT": "2"})
    assert_clean_failure(r, contains="did not answer within 2 s", code=4)
    assert time.monotonic() - t0 < 25  # the hang is not waited out
    assert_unchanged(blog, before)


def test_http_500(warm, tmp_path, fake_server):
    r, blog, before, _ = _main_run(warm, tmp_path, "--llm", "m", "--llm-url", fake_server("500"))
    assert_clean_failure(r, contains="answered HTTP 500", code=4)
    assert_unchanged(blog, before)


def test_http_500_on_every_question_stops_the_run(warm, tmp_path, fake_server):
    r, blog, before, _ = _main_run(warm, tmp_path, "--llm", "m", "--llm-url", fake_server("chat-500"))
    assert_clean_failure(r, contains="failed 2 questions in a row", code=4)
    assert_unchanged(blog, before)


def test_a_response_that_is_not_json(warm, tmp_path, fake_server):
    r, blog, before, _ = _main_run(warm, tmp_path, "--llm", "m", "--llm-url", fake_server("html"))
    assert_clean_failure(r, contains="did not answer JSON", code=4)
    assert_unchanged(blog, before)


def test_spec_parsing():
    from ramble2post.errors import ModelError
    from ramble2post.structure.models import parse_llm_spec

    def split(text: str, url: str | None = None) -> tuple[str, str]:
        spec = parse_llm_spec(text, url=url)
        assert spec.kind == "openai"
        return spec.url, spec.name

    assert split("openai:http://127.0.0.1:11434/v1/qwen2.5:7b") == ("http://127.0.0.1:11434/v1", "qwen2.5:7b")
    assert split("openai:http://h:8000/v1/meta-llama/Llama-3.1-8B") == (
        "http://h:8000/v1",
        "meta-llama/Llama-3.1-8B",
    )
    assert split("m", url="http://h:1234/v1/") == ("http://h:1234/v1", "m")
    assert parse_llm_spec("m", url="http://h:1234/v1/").text == "openai:http://h:1234/v1/m"
    assert parse_llm_spec("none", url="http://h:1234/v1").kind == "none"  # --llm none wins over --llm-url
    for bad in ("openai:qwen", "openai:http://h:1/v1/", "openai:ftp://h/v1/m"):
        with pytest.raises(ModelError):
            parse_llm_spec(bad)


@pytest.mark.slow
def test_a_served_model_judges_support_from_its_log_probabilities(llama_server):
    """Issue 24: a served model is the second check of its own rewrites and titles when the server
    gives top_logprobs (llama-cpp-python does): P(Yes) and P(No) read from them, renormalised."""
    from ramble2post.structure.server import ServerLLM
    from ramble2post.structure.support import PREFIX, question_for, support_check

    model = ServerLLM(url=llama_server, model="smollm2")
    q = question_for(source="The GPU has 80 GB of memory.", claim="The GPU has 80 GB of memory.")
    p_yes, p_no = model.choice_probabilities(prefix=PREFIX, question=q, options=["Yes", "No"])
    assert 0.0 < p_yes < 1.0 and abs(p_yes + p_no - 1.0) < 1e-9
    p = support_check(model)("Batching reads the weights once.", "Batching reads the weights once.")
    assert p is not None and 0.0 < p < 1.0


def test_a_server_without_log_probabilities_is_no_judge(fake_server):
    """A server that answers no top_logprobs judges nothing: the check says None (the rewrite is then
    not shown), and it is not asked again."""
    from ramble2post.structure.server import ServerLLM
    from ramble2post.structure.support import support_check, support_problems

    model = ServerLLM(url=fake_server("ok"), model="m")
    check = support_check(model)
    assert check("a", "a") is None and model._no_logprobs
    assert "no model judge" in support_problems(check, source="a", claim="a")[0]
