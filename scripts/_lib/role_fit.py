"""Fitting the role model (``scripts/train_roles.py``): one L2-regularised logistic regression per role.

Trainer-only, so it lives with the scripts, not in the runtime package; the fitted model is
``ramble2post.structure.roles.RoleModel`` (weights shipped as ``role_weights.json``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ramble2post.structure.roles import FEATURES, ROLES, feature_mask

CUE_MIN_LOGIT = 0.0  # logits per unit of a role's own cue strength, at least (the fit's prior)


def fit(
    rows: Sequence[Sequence[float]], labels: dict[str, Sequence[bool]], *, l2: float = 2.0, steps: int = 500
) -> tuple[tuple[float, ...], tuple[float, ...], dict[str, tuple[float, ...]], dict[str, float]]:
    """Standardise the features and fit one L2-regularised logistic regression per role (L-BFGS).

    Prior: a role's own spoken cue is evidence for it. Its weight is kept at least
    ``CUE_MIN_LOGIT`` logits per unit of cue strength, so a cue the gold set rarely
    contains ("for example" was said twice in its first nine rambles) still counts.
    """
    import torch

    x = torch.tensor(rows, dtype=torch.float64)
    mean = x.mean(0)
    scale = x.std(0).clamp(min=1e-6)
    z = (x - mean) / scale
    weights, bias = {}, {}
    for r in ROLES:
        y = torch.tensor([float(v) for v in labels[r]], dtype=torch.float64)
        mask = torch.tensor(feature_mask(r), dtype=torch.float64)
        own = FEATURES.index(f"cue_{r}")
        floor = torch.zeros(z.shape[1], dtype=torch.float64)
        floor[own] = CUE_MIN_LOGIT * float(scale[own])  # in standardised units
        w = torch.zeros(z.shape[1], dtype=torch.float64, requires_grad=True)
        b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

        def effective(w: Any, mask: Any = mask, floor: Any = floor, own: int = own) -> Any:
            lifted = w.clone()
            lifted[own] = floor[own] + torch.nn.functional.softplus(w[own])  # never below the prior
            return lifted * mask

        def closure(w: Any = w, b: Any = b, y: Any = y, opt: Any = opt, effective: Any = effective) -> Any:
            opt.zero_grad()
            we = effective(w)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(z @ we + b, y)
            loss = loss + l2 * (we @ we) / len(y)
            loss.backward()
            return loss

        opt.step(closure)
        weights[r] = tuple(float(v) for v in effective(w).detach())
        bias[r] = float(b.detach()[0])
    return tuple(float(v) for v in mean), tuple(float(v) for v in scale), weights, bias
