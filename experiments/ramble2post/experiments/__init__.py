"""Experiments measured on this machine when a ramble refers to them.

``get(name)``, ``all_experiments()`` and ``@register`` are the registry;
``detect_experiments`` (experiments.detect) finds which ones a transcript
refers to; ``run_detected`` (experiments.pipeline_hook) runs them for the
main command.
"""

from ramble2post.experiments.base import (
    RESULT_SCHEMA,
    Context,
    Experiment,
    ModelUsed,
    Param,
    Result,
    Trigger,
    all_experiments,
    get,
    load_result,
    register,
    save_result,
)

__all__ = [
    "RESULT_SCHEMA",
    "Context",
    "Experiment",
    "ModelUsed",
    "Param",
    "Result",
    "Trigger",
    "all_experiments",
    "get",
    "load_result",
    "register",
    "save_result",
]
