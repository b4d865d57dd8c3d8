"""Domain exceptions.

The library raises these (``raise ... from e`` to keep the cause); the CLI edge
turns them into one ``Error: ...`` line with a hint and a non-zero exit code.
"""

from __future__ import annotations


class Ramble2PostError(Exception):
    """Base class. ``hint`` is a short next step shown under the error line."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


class InputError(Ramble2PostError):
    """The user's input (audio file, transcript, arguments) cannot be used."""

    exit_code = 2


class AudioError(InputError):
    """The audio file is missing, empty, not audio, truncated or silent."""


class DependencyError(Ramble2PostError):
    """A required program or package (ffmpeg, llama-cpp-python...) is missing."""

    exit_code = 3


class ModelError(Ramble2PostError):
    """A model cannot be found, verified or loaded."""

    exit_code = 4


class LLMOutputError(Ramble2PostError):
    """The language model produced output that fails validation."""


class BlogRepoError(Ramble2PostError):
    """The blog repository cannot be used safely."""

    exit_code = 5


class ExperimentError(Ramble2PostError):
    """An experiment failed to run."""
