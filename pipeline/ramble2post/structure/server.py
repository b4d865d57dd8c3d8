"""A model you already serve: any OpenAI-compatible chat-completions endpoint on your machine.

llama.cpp's ``llama-server``, Ollama, vLLM, LM Studio, SGLang and llama-cpp-python's own
``python -m llama_cpp.server`` all speak the same protocol, so one backend covers them:

    --llm openai:http://127.0.0.1:8080/v1/qwen2.5-7b-instruct    # the model name after /v1/
    --llm qwen2.5:7b --llm-url http://127.0.0.1:11434/v1          # the same, split in two

The backend answers the same ``ask(prefix=..., question=..., schema=...)`` as the in-process
GGUF, so prompts, schemas, verification and caching are shared. Structured output: a JSON
schema in ``response_format`` (OpenAI, vLLM, llama-server, Ollama), else llama-cpp-python's
``{"type": "json_object", "schema": ...}``, else plain JSON checked and asked once more;
the first form the server accepts is remembered.

Faults: a server that cannot be reached, hangs past ``RAMBLE2POST_LLM_TIMEOUT`` seconds, or
lacks the model is a one-line ``ModelError`` before anything is written. Once running, an
HTTP error or an answer that is not JSON costs that one question (its item keeps the
speaker's words, logged in the post); ``MAX_FAILURES`` in a row stop the run. A prompt
longer than the server's context raises ``ContextLengthError`` carrying the server's limit,
and the asker splits the transcript into sections that fit.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from ramble2post.config import current
from ramble2post.errors import LLMOutputError, ModelError
from ramble2post.structure.llm import MAX_TOKENS_DEFAULT, TEMPERATURE, Answer, LLMInfo

log = logging.getLogger(__name__)

PREFIX = "openai:"  # --llm openai:URL/MODEL (parsed by structure.models.parse_llm_spec)
DEFAULT_N_CTX = 8192  # tokens assumed when the server does not say (a context error corrects it)
CHARS_PER_TOKEN = 3.2  # characters per token for estimates (English BPE ~4: errs on the long side)
MAX_FAILURES = 2  # failed questions in a row before the run stops (a draft asks the model few: title, tags)
_CTX_RE = re.compile(r"(?:maximum context length|context (?:window|size|length))\D{0,40}?(\d{3,7})", re.I)
# response_format forms, most standard first
TOP_LOGPROBS = 20  # alternatives asked per answer token (OpenAI's maximum) for choice_probabilities
_FORMATS = ("json_schema", "json_object", "plain")


class ContextLengthError(LLMOutputError):
    """The prompt did not fit the server's context; ``n_ctx`` is the server's limit when it said."""

    def __init__(self, message: str, *, n_ctx: int | None):
        super().__init__(message, hint="the transcript is asked about in shorter sections")
        self.n_ctx = n_ctx


class ServerLLM:
    """An OpenAI-compatible chat-completions server, asked over HTTP (stdlib only)."""

    gpu_offload = True  # the server decides; full-context questions are cheap there

    def __init__(
        self,
        *,
        url: str,
        model: str,
        system: str = "",
        reuse_prefix: bool = True,
        timeout_s: float | None = None,
        api_key: str | None = None,
    ):
        """url: the server's base URL (``.../v1``); model: the name it serves; system: the system prompt;
        reuse_prefix: unused (the server caches prefixes itself); timeout_s: seconds per request
        (default: the ``llm_timeout`` setting); api_key: bearer token (default: the ``llm_api_key`` setting)."""
        conf = current()
        self.url, self.model, self._system = url.rstrip("/"), model, system
        self.timeout = conf.llm_timeout if timeout_s is None else timeout_s
        self.api_key = conf.llm_api_key if api_key is None else api_key
        self._format: str | None = None  # the response_format form this server accepted
        self._failures = 0
        self._no_logprobs = False  # set once the server refuses them: no judge, asked no more
        listed = self._models()
        entry = next((m for m in listed if m.get("id") == model), None)
        if entry is None:
            names = ", ".join(str(m.get("id")) for m in listed[:8]) or "none"
            raise ModelError(
                f"the server at {self.url} has no model {model!r} (it serves: {names})",
                hint=f"pass one of those: --llm {PREFIX}{self.url}/MODEL",
            )
        self.n_ctx = self._context(entry)
        quant = str((entry.get("meta") or {}).get("ftype") or entry.get("quantization") or "reported by server: no")
        self.info = LLMInfo(
            name=model,
            path=self.url,
            sha256="",
            quantization=quant if "no" not in quant else "unknown",
            source=f"server:{self.url}",
        )
        self.n_threads = None

    # ------------------------------------------------------------------ HTTP
    def _request(self, method: str, path: str, body: dict | None = None, *, root: bool = False) -> Any:
        base = self.url.removesuffix("/v1") if root else self.url
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{base}{path}", data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if self.api_key:
            req.add_header("Authorization", f"Bearer {self.api_key}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            detail = e.read().decode("utf-8", "replace")
            raise _HTTPStatus(e.code, _error_message(detail)) from e
        except (TimeoutError, OSError) as e:  # URLError is an OSError; socket.timeout is TimeoutError
            reason = getattr(e, "reason", e)
            if isinstance(reason, TimeoutError) or "timed out" in str(reason):
                raise ModelError(
                    f"the LLM server at {self.url} did not answer within {self.timeout:g} s",
                    hint="is it overloaded or stuck? RAMBLE2POST_LLM_TIMEOUT sets the limit (seconds)",
                ) from e
            raise ModelError(
                f"cannot reach the LLM server at {self.url}: {reason}",
                hint="start it (e.g. llama-server -m MODEL.gguf --port 8080) or fix --llm-url",
            ) from e
        try:
            return json.loads(raw)
        except ValueError as e:
            raise _NotJSON(raw[:120].decode("utf-8", "replace")) from e

    def _models(self) -> list[dict[str, Any]]:
        try:
            out = self._request("GET", "/models")
        except _HTTPStatus as e:
            raise ModelError(
                f"the LLM server at {self.url} answered HTTP {e.status} to /models: {e.message}",
                hint="see the server's log; the URL usually ends in /v1",
            ) from e
        except _NotJSON as e:
            raise ModelError(
                f"{self.url}/models did not answer JSON ({e.args[0]!r}): not an OpenAI-compatible server?",
                hint="the URL usually ends in /v1",
            ) from e
        data = out.get("data") if isinstance(out, dict) else None
        return [m for m in data if isinstance(m, dict)] if isinstance(data, list) else []

    def _context(self, entry: dict[str, Any]) -> int:
        """The context size the server reports (vLLM max_model_len, llama-server meta/props), else a default."""
        for value in (entry.get("max_model_len"), (entry.get("meta") or {}).get("n_ctx_train")):
            if isinstance(value, int) and value > 0:
                return value
        try:
            props = self._request("GET", "/props", root=True)  # llama-server
            n = (props.get("default_generation_settings") or {}).get("n_ctx")
            if isinstance(n, int) and n > 0:
                return n
        except (ModelError, _HTTPStatus, _NotJSON, AttributeError):
            pass
        return DEFAULT_N_CTX

    # ------------------------------------------------------------------ LLM protocol
    def set_system(self, system: str) -> None:
        self._system = system

    def count_tokens(self, text: str) -> int:
        """An estimate on the long side (no tokenizer over HTTP is standard); a context error corrects it."""
        return int(len(text) / CHARS_PER_TOKEN) + 1

    def ask(
        self, *, prefix: str, question: str, schema: dict | None = None, max_tokens: int = MAX_TOKENS_DEFAULT
    ) -> Answer:
        messages = [{"role": "user", "content": f"{prefix}\n\n{question}"}]
        if self._system:
            messages.insert(0, {"role": "system", "content": self._system})
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": TEMPERATURE,
            "seed": 0,
        }
        t0 = time.perf_counter()
        try:
            text, usage = self._complete(body, schema)
        except LLMOutputError as e:
            self._failures += 1
            if self._failures >= MAX_FAILURES:
                raise ModelError(
                    f"the LLM server at {self.url} failed {self._failures} questions in a row (last: {e})",
                    hint="see its log; the post was not written",
                ) from None
            raise
        self._failures = 0
        wall = time.perf_counter() - t0
        prompt_tokens = int(usage.get("prompt_tokens") or self.count_tokens(prefix + question))
        gen = int(usage.get("completion_tokens") or self.count_tokens(text))
        cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
        return Answer(text, prompt_tokens, cached, gen, 0.0, wall)

    def choice_probabilities(self, *, prefix: str, question: str, options: Sequence[str]) -> list[float]:
        """Each option's probability as the first answer token, renormalised over ``options``, from the
        server's ``top_logprobs`` (OpenAI chat completions; llama-cpp-python, vLLM and llama-server give
        them). An option outside the top ``TOP_LOGPROBS`` counts as no likelier than the least likely
        listed token. LLMOutputError when the server gives no log-probabilities or lists no option:
        the caller then has no judge (``structure.support``), never a made-up probability."""
        if self._no_logprobs:
            raise LLMOutputError("the LLM server gives no log-probabilities")
        messages = [{"role": "user", "content": f"{prefix}\n\n{question}"}]
        if self._system:
            messages.insert(0, {"role": "system", "content": self._system})
        body = {
            "model": self.model,
            "messages": messages,
            "max_tokens": 1,
            "temperature": 0.0,
            "seed": 0,
            "logprobs": True,
            "top_logprobs": TOP_LOGPROBS,
        }
        try:
            out = self._request("POST", "/chat/completions", body)
            tops = out["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
            listed = [(str(t["token"]).strip(), float(t["logprob"])) for t in tops]
        except (_HTTPStatus, _NotJSON, KeyError, IndexError, TypeError, ValueError) as e:
            self._no_logprobs = True
            raise LLMOutputError(f"the LLM server gives no log-probabilities ({type(e).__name__})") from None
        if not listed:
            raise LLMOutputError("the LLM server listed no answer tokens")
        floor = min(lp for _, lp in listed)
        found = [max((lp for tok, lp in listed if tok == o), default=None) for o in options]
        if all(lp is None for lp in found):
            raise LLMOutputError(f"none of the answers {list(options)} is among the server's likeliest tokens")
        probs = [math.exp(lp if lp is not None else floor) for lp in found]
        total = sum(probs)
        return [p / total for p in probs]

    def _complete(self, body: dict[str, Any], schema: dict | None) -> tuple[str, dict[str, Any]]:
        forms = [self._format] if self._format else list(_FORMATS)
        if schema is None:
            forms = ["plain"]
        last: Exception | None = None
        for form in forms:
            attempt = dict(body)
            if schema is not None and form == "json_schema":
                attempt["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": "answer", "schema": schema, "strict": True},
                }
            elif schema is not None and form == "json_object":
                attempt["response_format"] = {"type": "json_object", "schema": schema}
            elif schema is not None:  # plain: say the schema in words, check it, ask once more
                msgs = [dict(m) for m in body["messages"]]
                msgs[-1]["content"] += "\n\nAnswer with JSON only, matching this schema: " + json.dumps(schema)
                attempt["messages"] = msgs
            for _ in range(2 if form == "plain" and schema is not None else 1):
                try:
                    out = self._request("POST", "/chat/completions", attempt)
                except _HTTPStatus as e:
                    if e.status == 400 and _is_context_error(e.message):
                        limit = _context_limit(e.message)
                        self.n_ctx = min(self.n_ctx, limit) if limit else self.n_ctx
                        raise ContextLengthError(e.message, n_ctx=limit) from None
                    rejected_form = e.status in (400, 422) or "response_format" in e.message  # llama-cpp-python: 500
                    if rejected_form and "response_format" in attempt and self._format is None:
                        last = e  # this form is not supported here: try the next one
                        break
                    raise LLMOutputError(f"the LLM server answered HTTP {e.status}: {e.message}") from None
                except _NotJSON as e:
                    raise LLMOutputError(f"the LLM server's response is not JSON: {e.args[0]!r}") from None
                text, usage = _content(out)
                if schema is None or _valid(text, schema):
                    if schema is not None:
                        self._format = form
                    return text, usage
                last = LLMOutputError(f"answer does not match the schema: {text[:80]!r}")
                if form != "plain":
                    self._format = form  # accepted, just a poor answer: keep using the form
                    return text, usage  # the stage's parser and verifier decide
        raise LLMOutputError(str(last) if last else "no answer")


class _HTTPStatus(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message}")
        self.status, self.message = status, message


class _NotJSON(Exception):
    pass


def _error_message(detail: str) -> str:
    try:
        data = json.loads(detail)
        err = data.get("error", data)
        msg = err.get("message") if isinstance(err, dict) else err
        return " ".join(str(msg or detail).split())[:300]
    except (ValueError, AttributeError):
        return " ".join(detail.split())[:300] or "no detail"


def _is_context_error(message: str) -> bool:
    low = message.lower()
    return "context" in low and any(w in low for w in ("length", "window", "exceed", "too long", "maximum"))


def _context_limit(message: str) -> int | None:
    m = _CTX_RE.search(message)
    return int(m.group(1)) if m else None


def _content(out: Any) -> tuple[str, dict[str, Any]]:
    try:
        text = out["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as e:
        raise LLMOutputError(f"the LLM server's response has no message: {str(out)[:120]!r}") from e
    if not isinstance(text, str):
        raise LLMOutputError("the LLM server's message has no text")
    usage = out.get("usage") if isinstance(out, dict) else None
    return text.strip(), usage if isinstance(usage, dict) else {}


def _valid(text: str, schema: dict) -> bool:
    """JSON with the schema's required keys (the parsers downstream check types)."""
    try:
        data = json.loads(text)
    except ValueError:
        return False
    return isinstance(data, dict) and all(k in data for k in schema.get("required", []))
