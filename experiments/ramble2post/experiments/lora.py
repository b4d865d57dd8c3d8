"""``lora-finetune``: what LoRA saves when a model fine-tunes on small hardware, and what it costs.

The claim: with LoRA you can fine-tune on a laptop, because only small low-rank matrices
train, so gradients and optimizer state shrink, and quality hardly suffers.

What is measured: a few Adam steps of the ramble's own Whisper model's **decoder** on the
same small batch (30-second windows of the bundled sample with its hand transcript, or the
ramble's audio with a given reference), teacher-forced next-token loss. The encoder stays
frozen and runs once (its output is the same for every method). Methods:

* **full**: every decoder parameter trains (the 51,864-token embedding included);
* **LoRA rank r**: every linear layer of the decoder blocks gets ``W x + (alpha/r) B A x``
  with ``A`` (r x in) and ``B`` (out x r, zero at the start); only A and B train.

Per method: trainable parameters; memory **by kind**, counted from the tensors themselves
(weights; gradients, the ``.grad`` tensors after backward; optimizer state, Adam's moment
tensors after a step; activations, the tensors autograd saved for backward during the
forward pass, each storage counted once); the median step time; the loss after each step.
On a GPU the allocator's peak per method is recorded too.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import statistics
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ramble2post.errors import ExperimentError
from ramble2post.experiments.base import (
    Context,
    Experiment,
    ModelUsed,
    Param,
    ReaderTable,
    Result,
    Trigger,
    register,
)
from ramble2post.experiments.batching import int_list

SAMPLE_RATE = 16_000  # Hz
WINDOW_S = 30.0  # s of audio per training example (Whisper's input length)
LORA_ALPHA = 16.0  # LoRA scale numerator: the update is (alpha / r) B A x
MIB = 2**20  # bytes

COLUMNS = (
    "method",
    "rank",
    "trainable_params",
    "trainable_pct",
    "weight_bytes",
    "grad_bytes",
    "optimizer_bytes",
    "activation_bytes",
    "total_bytes",
    "peak_allocated_bytes",
    "lr",
    "step_s",
    "first_loss",
    "final_loss",
)
UNITS = {
    "rank": "LoRA rank (0: full)",
    "trainable_params": "parameters",
    "trainable_pct": "% of the decoder's parameters",
    "weight_bytes": "bytes (every parameter of the model)",
    "grad_bytes": "bytes (.grad tensors after backward)",
    "optimizer_bytes": "bytes (Adam moments after a step)",
    "activation_bytes": "bytes (saved for backward, each storage once)",
    "total_bytes": "bytes (sum of the four)",
    "peak_allocated_bytes": "bytes (GPU allocator peak; none on CPU)",
    "lr": "learning rate",
    "step_s": "s per step (median after the first)",
    "first_loss": "nats/token (before any update)",
    "final_loss": "nats/token (after the last step)",
}

_SMALL = r"(?:extra|small|tiny|little|thin|skinny|narrow|side|few million|low[\s-]rank|factori[sz]ed|rank[\s-]\w+)"
_PART = (
    r"(?:weights?|param(?:eter)?s?|matri(?:x|ces)|updates?|adapters?|add[\s-]ons?|patch(?:es)?|corrections?|deltas?)"
)
TRIGGERS = (
    Trigger(
        r"\b(?:q[\s-]?)?lora\b|\bq[\s-]?laura\b|\blow[\s-]?rank (?:adaptation|adapters?|updates?)\b"
        r"|\blower[\s-]rank adaptation\b|\bpeft\b|\bparameter[\s-]efficient\b",
        1.0,
        "LoRA",
    ),
    # "LoRA" heard as the name Laura: counts only with a training word beside it ("Laura said" is a person)
    Trigger(r"\blaura\b", 0.75, "LoRA (heard as Laura)"),
    Trigger(r"\bfine[\s-]?tun(?:e|es|ed|ing)\b|\bfinetun\w*\b|\bre[\s-]?train(?:ing)? the whole\b", 0.5, "fine-tuning"),
    Trigger(r"\badapters?\b", 0.25, "adapters"),  # LoRA's own word, though too weak alone
    # the mechanism said without the name: only a small, extra, low-rank part trains
    Trigger(
        rf"\b(?:only|just)\b[^.?!]{{0,40}}?\b{_SMALL}\b[^.?!]{{0,25}}?\b{_PART}\b", 0.75, "only a small part trains"
    ),
    Trigger(
        rf"\b(?:learn|learns|learning|train|trains|training)\b[^.?!]{{0,30}}?\b{_SMALL}\b[^.?!]{{0,20}}?\b{_PART}\b"
        r"|\bproduct of two (?:small|thin|skinny|narrow|tiny|low[\s-]rank) matri(?:x|ces)\b",
        0.5,
        "a small part learns",
    ),
    Trigger(
        r"\b(?:low|intrinsic|small)[\s-](?:intrinsic[\s-])?rank\b[^.?!]{0,40}?\b(?:updates?|matri(?:x|ces)|deltas?)\b"
        r"|\brank[\s-](?:one|two|four|eight|sixteen|\d+) (?:updates?|matri(?:x|ces)|adapters?)\b"
        r"|\b(?:r|rank) (?:equals|=) ?(?:\d+|one|two|four|eight|sixteen|thirty[\s-]two|sixty[\s-]four)\b",
        0.5,
        "low-rank update",
    ),
    Trigger(r"\bfrozen\b|\bfreeze\b|\bleave the (?:original|base)(?: model| weights)? alone\b", 0.25, "frozen base"),
    Trigger(
        r"\boptimi[sz]er (?:state|memory)\b|\bgradients?\b|\btrainable (?:params|parameters?)\b"
        r"|\bon (?:my|a|your) laptop\b|\b(?:consumer|single|one|home|desktop|gaming)(?: graphics| consumer)? (?:gpu|card)\b"
        r"|\blow[\s-]rank\b|\brank (?:four|eight|sixteen|\d+)\b|\bbytes per param(?:eter)?\b"
        r"|\btraining (?:footprint|memory)\b|\bmemory for training\b"
        r"|\b(?:nearly|almost|basically|about) as (?:good|well)\b|\b(?:barely|hardly) any quality\b",
        0.25,
        "training word",
        context=True,
    ),
)


@register
class LoraFinetune(Experiment):
    name = "lora-finetune"
    version = "1"
    claim = "With LoRA a model fine-tunes on small hardware: only low-rank matrices train, so memory shrinks, at little cost in loss."
    triggers = TRIGGERS
    descriptions = (
        "with LoRA you can fine-tune a model on a laptop because only small low-rank adapter matrices train",
        "low rank adaptation shrinks the gradients and optimizer state so fine-tuning fits in little memory",
        "parameter efficient fine-tuning gets close to full fine-tuning quality",
        "freeze the base model and train only a small low rank update next to each weight matrix",
        "only a few million extra parameters get gradients, so the optimizer memory of training almost disappears",
    )
    params = {
        "ranks": Param((4, 16, 64), "LoRA ranks to compare with full fine-tuning", quick=(8,)),
        "steps": Param(12, "optimizer steps per method, on the same batch", quick=3),
        "windows": Param(2, "30-second windows in the batch (examples)", quick=1),
        "lr_full": Param(1e-5, "learning rate of full fine-tuning (a usual Whisper fine-tuning rate)"),
        "lr_lora": Param(1e-3, "learning rate of the LoRA matrices (a usual LoRA rate)"),
        "max_tokens": Param(96, "text tokens per example at most", quick=64),
    }

    def run(self, context: Context) -> Result:
        from ramble2post.experiments.quantization_loss import _audio_and_reference, _load_model, _tokenizer

        p = self.resolve_params(context)
        p["ranks"] = int_list(p["ranks"], "ranks")
        model, info = _load_model(context.whisper_model, context.device)
        seconds = WINDOW_S * int(p["windows"])
        notes = []
        if context.audio_path is not None and context.reference_text is None:
            # a ramble's own audio has no reference words to train on: the bundled sample has its hand transcript
            notes.append(
                "The ramble's audio has no reference transcript, so the decoder trained on the bundled sample."
            )
            context = dataclasses.replace(context, audio_path=None)
        audio, audio_path, reference, ref_source = _audio_and_reference(context, seconds)
        if not reference:
            raise ExperimentError(
                "lora-finetune needs the words of its audio to train on",
                hint="run it on the bundled sample, or pass the audio's reference text",
            )
        context.report(f"Whisper {info.name}: encoding {len(audio) / SAMPLE_RATE:.0f} s of audio once (frozen encoder)")
        batch = make_batch(model, _tokenizer(model, "en"), audio, reference, int(p["max_tokens"]), context.device)
        rows, curves = [], {}
        for rank in [0, *p["ranks"]]:
            label = "full" if rank == 0 else f"LoRA r={rank}"
            context.report(f"{label}: {p['steps']} steps")
            lr = float(p["lr_full"] if rank == 0 else p["lr_lora"])
            row, losses = train(model, batch, rank=rank, steps=int(p["steps"]), lr=lr, device=context.device)
            rows.append((label, *row))
            curves[f"{label} losses"] = " ".join(f"{v:.4f}" for v in losses)
        summary = _summary(rows, curves, int(p["steps"]))
        params = dict(p, audio=str(audio_path), reference=ref_source, examples=int(batch["tokens"].shape[0]))
        return self.make_result(
            context,
            params=params,
            models=[ModelUsed(role="whisper", name=info.name, path=info.path, sha256=info.sha256)],
            columns=COLUMNS,
            units=UNITS,
            rows=rows,
            summary=summary,
            reading=reading(summary),
            notes=[
                *notes,
                "The encoder is frozen and runs once; memory counts the decoder's training state and every "
                "weight of the model. Learning rates are each method's usual one, so the losses compare recipes.",
                *(
                    ["On a CPU there is no allocator peak: the four kinds are counted from the tensors."]
                    if context.device == "cpu"
                    else []
                ),
            ],
        )

    def reader_table(self, result: Result) -> ReaderTable:
        from ramble2post.experiments.reader_tables_training import lora_reader_table

        return lora_reader_table(result)

    def plot(self, results: Sequence[Result]) -> dict[str, bytes]:
        from ramble2post.experiments.plots_training import lora_png

        return {"lora-finetune.png": lora_png(results)}


# ----------------------------------------------------------------------- LoRA


class LoRALinear(nn.Module):
    """``base(x) + (alpha / r) · x Aᵀ Bᵀ``: the frozen layer plus a trainable rank-r update (B starts at 0)."""

    def __init__(self, base: nn.Linear, *, rank: int, alpha: float = LORA_ALPHA) -> None:
        super().__init__()
        self.base = base
        base.requires_grad_(False)
        self.a = nn.Parameter(torch.empty(rank, base.in_features, device=base.weight.device))
        self.b = nn.Parameter(torch.zeros(base.out_features, rank, device=base.weight.device))
        nn.init.kaiming_uniform_(self.a, a=math.sqrt(5))  # as nn.Linear initialises its weight
        self.scale = alpha / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.a.t() @ self.b.t()) * self.scale


def add_lora(module: nn.Module, *, rank: int) -> int:
    """Freeze ``module`` and wrap every ``nn.Linear`` inside it with a :class:`LoRALinear`; returns how many."""
    module.requires_grad_(False)
    targets = [(parent, name, child) for parent in module.modules() for name, child in parent.named_children()]
    n = 0
    for parent, name, child in targets:
        if isinstance(child, nn.Linear):
            setattr(parent, name, LoRALinear(child, rank=rank))
            n += 1
    return n


def trainable(module: nn.Module) -> list[nn.Parameter]:
    return [p for p in module.parameters() if p.requires_grad]


# ------------------------------------------------------------------- training


def make_batch(model, tokenizer, audio, reference: str, max_tokens: int, device: str) -> dict[str, torch.Tensor]:
    """Encoder output and teacher-forcing tokens for each 30-s window (reference words shared out by time)."""
    from whisper.audio import log_mel_spectrogram, pad_or_trim

    n_win = max(1, math.ceil(len(audio) / (WINDOW_S * SAMPLE_RATE)))
    words = reference.split()
    prefix = list(tokenizer.sot_sequence_including_notimestamps)
    mels, seqs = [], []
    for i in range(n_win):
        a, b = int(i * WINDOW_S * SAMPLE_RATE), int((i + 1) * WINDOW_S * SAMPLE_RATE)
        chunk = audio[a:b]
        if len(chunk) < SAMPLE_RATE:  # < 1 s of audio left: nothing to learn from
            continue
        w0 = round(len(words) * a / len(audio))
        w1 = round(len(words) * min(b, len(audio)) / len(audio))
        text = tokenizer.encode(" " + " ".join(words[w0:w1]))[:max_tokens]
        mels.append(log_mel_spectrogram(pad_or_trim(torch.from_numpy(chunk.copy())), model.dims.n_mels))
        seqs.append(prefix + text + [tokenizer.eot])
    length = min(len(s) for s in seqs)  # same length for every row: no padding to mask
    tokens = torch.tensor([s[:length] for s in seqs], device=device)
    with torch.no_grad():
        features = model.embed_audio(torch.stack(mels).to(device))
    return {"features": features, "tokens": tokens[:, :-1], "targets": tokens[:, 1:], "first": len(prefix) - 1}


def _loss(decoder, batch) -> torch.Tensor:
    logits = decoder(batch["tokens"], batch["features"])[:, batch["first"] :]
    targets = batch["targets"][:, batch["first"] :]
    return nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1))


def _bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def _activation_bytes(decoder, batch, params: set[int]) -> tuple[torch.Tensor, int]:
    """Loss of one forward pass, and the bytes autograd saved for backward (each storage once)."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params:
            seen[ptr] = max(seen.get(ptr, 0), t.untyped_storage().nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = _loss(decoder, batch)
    return loss, sum(seen.values())


def train(model, batch, *, rank: int, steps: int, lr: float, device: str) -> tuple[tuple, list[float]]:
    """``steps`` Adam steps of a copy of the decoder (full if rank == 0, else LoRA); the row and the losses."""
    decoder = copy.deepcopy(model.decoder).float()
    decoder.train()
    n_all = sum(p.numel() for p in decoder.parameters())
    if rank:
        add_lora(decoder.blocks, rank=rank)
        decoder.token_embedding.requires_grad_(False)
        decoder.positional_embedding.requires_grad_(False)
        decoder.ln.requires_grad_(False)
    train_params = trainable(decoder)
    try:  # the fused kernel steps 52M parameters ~5x faster than the for-each one on a CPU
        opt = torch.optim.Adam(train_params, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        opt = torch.optim.Adam(train_params, lr=lr)
    param_ptrs = {p.untyped_storage().data_ptr() for p in decoder.parameters()}
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    losses, times, act, grad_bytes = [], [], 0, 0
    for step in range(steps + 1):  # the last pass only measures the loss reached
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=False)  # keep the .grad buffers: no re-allocation per step
        loss, act_now = _activation_bytes(decoder, batch, param_ptrs)
        losses.append(float(loss.detach()))
        if step == steps:
            break
        act = max(act, act_now)
        loss.backward()
        grad_bytes = _bytes(p.grad for p in train_params if p.grad is not None)
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    opt_bytes = _bytes(v for st in opt.state.values() for v in st.values() if torch.is_tensor(v) and v.dim() > 0)
    weights = _bytes(model.encoder.parameters()) + _bytes(decoder.parameters())
    peak = torch.cuda.max_memory_allocated() if device == "cuda" else None
    n_train = sum(p.numel() for p in train_params)
    row = (
        rank,
        n_train,
        round(100 * n_train / n_all, 3),
        weights,
        grad_bytes,
        opt_bytes,
        act,
        weights + grad_bytes + opt_bytes + act,
        peak,
        lr,
        round(statistics.median(times[1:] or times), 4),
        round(losses[0], 4),
        round(losses[-1], 4),
    )
    return row, losses


# -------------------------------------------------------------------- summary


def _summary(rows: list[tuple], curves: dict[str, str], steps: int) -> dict[str, Any]:
    r = [dict(zip(COLUMNS, row)) for row in rows]
    full = r[0]
    s: dict[str, Any] = {"steps": steps, "full_total_MiB": round(full["total_bytes"] / MIB, 1), **curves}
    s["full_grad_opt_MiB"] = round((full["grad_bytes"] + full["optimizer_bytes"]) / MIB, 2)
    s["full_final_loss"] = full["final_loss"]
    s["first_loss"] = full["first_loss"]
    for x in r[1:]:
        tag = f"lora_r{x['rank']}"
        s[f"{tag}_trainable_params"] = x["trainable_params"]
        s[f"{tag}_total_MiB"] = round(x["total_bytes"] / MIB, 1)
        s[f"{tag}_grad_opt_MiB"] = round((x["grad_bytes"] + x["optimizer_bytes"]) / MIB, 2)
        s[f"{tag}_memory_saving"] = round(full["total_bytes"] / x["total_bytes"], 3)
        s[f"{tag}_grad_opt_saving"] = round(
            (full["grad_bytes"] + full["optimizer_bytes"]) / max(1, x["grad_bytes"] + x["optimizer_bytes"]), 1
        )
        s[f"{tag}_final_loss"] = x["final_loss"]
        s[f"{tag}_step_speedup"] = round(full["step_s"] / x["step_s"], 3) if x["step_s"] else None
    if len(r) > 1:
        mid = r[1 + (len(r) - 2) // 2]  # a middle rank speaks for LoRA in the sentence
        s["lora_rank_quoted"] = mid["rank"]
    return s


def reading(s: dict[str, Any]) -> str:
    rank = s.get("lora_rank_quoted")
    if rank is None:
        return f"Full fine-tuning held {s['full_total_MiB']:.0f} MiB per step; no LoRA rank was measured."
    t = f"lora_r{rank}"
    return (
        f"LoRA rank {rank} trained {s[f'{t}_trainable_params']:,} parameters instead of every decoder weight: "
        f"gradients and optimizer state fell from {s['full_grad_opt_MiB']:.0f} MiB to {s[f'{t}_grad_opt_MiB']:.1f} MiB "
        f"and a step held {s[f'{t}_total_MiB']:.0f} MiB instead of {s['full_total_MiB']:.0f} MiB "
        f"({s[f'{t}_memory_saving']:.1f}x less; the weights and activations stay). "
        f"After {s['steps']} steps on the same batch the loss was {s[f'{t}_final_loss']:.3f} with LoRA and "
        f"{s['full_final_loss']:.3f} with full fine-tuning (from {s['first_loss']:.3f} nats/token), each at its usual "
        "learning rate."
    )
