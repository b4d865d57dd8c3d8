"""Command-line interface.

``ramble2post AUDIO`` runs the whole pipeline; subcommands run one stage.
Domain errors (``pipeline.errors``) become one ``Error: ...`` line plus a hint
and a non-zero exit code; ``--debug`` (or ``RAMBLE2POST_DEBUG=1``) shows the
traceback instead.
"""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import click

from . import __version__
from .errors import Ramble2PostError

EXIT_INTERRUPTED = 130  # 128 + SIGINT, the shell convention


def _debug_enabled() -> bool:
    return os.environ.get("RAMBLE2POST_DEBUG", "") not in ("", "0")


class DefaultGroup(click.Group):
    """A group whose first argument may be an audio file instead of a command.

    ``ramble2post audio.m4a`` is read as ``ramble2post run audio.m4a``.
    """

    default_command = "run"

    def parse_args(self, ctx, args):
        lead = []  # group flags before the audio path: `ramble2post --debug audio.m4a`
        while args and args[0] == "--debug":
            lead, args = [*lead, args[0]], args[1:]
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = [self.default_command, *args]
        elif args and args[0].startswith("-") and args[0] not in ("--help", "-h", "--version", "--debug"):
            # options of the default command given before the audio path
            if not any(a in self.commands for a in args):
                args = [self.default_command, *args]
        return super().parse_args(ctx, [*lead, *args])

    def invoke(self, ctx):
        _install_sigterm_handler()
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Ramble2PostError as e:
            if ctx.meta.get("debug") or _debug_enabled():
                raise
            click.echo(f"Error: {e}", err=True)
            if e.hint:
                click.echo(f"Hint: {e.hint}", err=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            if ctx.meta.get("debug") or _debug_enabled():
                raise
            _forget_unhandled_interrupt()
            click.echo(
                "Interrupted. Finished stages are cached: run the same command again to resume.",
                err=True,
            )
            ctx.exit(EXIT_INTERRUPTED)
        except MemoryError as e:
            if ctx.meta.get("debug") or _debug_enabled():
                raise
            click.echo("Error: out of memory", err=True)
            click.echo("Hint: try a smaller model (--model tiny.en) or close other programs", err=True)
            ctx.exit(1)
        except OSError as e:
            if ctx.meta.get("debug") or _debug_enabled():
                raise
            if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                click.echo(f"Error: no space left to write {e.filename or 'output'} ({e.strerror})", err=True)
                click.echo("Hint: free disk space; finished stages are cached, rerun to resume", err=True)
            else:
                click.echo(f"Error: {e.strerror or e} ({e.filename})" if e.filename else f"Error: {e}", err=True)
            ctx.exit(1)
        except Exception as e:  # last resort: never a bare traceback without --debug
            if ctx.meta.get("debug") or _debug_enabled():
                raise
            click.echo(f"Error: unexpected {type(e).__name__}: {e}", err=True)
            click.echo("Hint: rerun with --debug for the traceback, and report it", err=True)
            ctx.exit(1)


_RECEIVED: list[int] = []  # signals turned into KeyboardInterrupt during this command


def _raise_interrupt(signum, frame):
    _RECEIVED.append(signum)
    raise KeyboardInterrupt(f"signal {signum}")


def interrupt_pending() -> bool:
    """True once SIGINT/SIGTERM arrived in this command.

    The KeyboardInterrupt is raised wherever Python happens to be, and library code
    can swallow it (observed: SIGTERM early in transcription, about 1 run in 20, the
    run then finished), so the main command also checks this between stages.
    """
    return bool(_RECEIVED)


def _forget_unhandled_interrupt() -> None:
    """Keep exit status 130 after a handled interrupt.

    CPython sets a private flag when a KeyboardInterrupt passes through Python code
    run from C (``PyRun_String``, used by C extensions); at exit it then kills the
    process with SIGINT although we handled the interrupt (intermittent exit -2).
    """
    try:
        import ctypes

        ctypes.c_int.in_dll(ctypes.pythonapi, "_Py_UnhandledKeyboardInterrupt").value = 0
    except (ImportError, ValueError, AttributeError, OSError):  # other Pythons: nothing to reset
        pass


def _install_sigterm_handler() -> None:
    """SIGTERM (and Ctrl-C, unless ignored) unwinds as KeyboardInterrupt, so ``finally`` blocks
    release locks and temp files; the signal is also recorded (``interrupt_pending``)."""
    import signal
    import threading

    _RECEIVED.clear()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_interrupt)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, _raise_interrupt)


@click.group(cls=DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ramble2post")
@click.option("--debug", is_flag=True, envvar="RAMBLE2POST_DEBUG", help="Show Python tracebacks on errors.")
@click.pass_context
def cli(ctx, debug):
    """Turn a spoken ramble into a three-layer blog post draft, locally.

    \b
    Example: draft a post from a recording into your blog repo
        ramble2post ramble.m4a --blog-repo ~/src/my-blog
    \b
    Or run one stage at a time:
        ramble2post transcribe ramble.m4a -o transcript.json
        ramble2post structure transcript.json -o post.json

    Everything runs on this machine: Whisper for speech, a GGUF model through
    llama.cpp for structure, and experiments measured on this hardware.
    """
    ctx.meta["debug"] = debug


def device_option(f):
    return click.option(
        "--device",
        type=click.Choice(["auto", "cpu", "cuda"]),
        default=None,
        envvar="RAMBLE2POST_DEVICE",
        help="Where to run models: auto picks CUDA (fp16) when available, else CPU (fp32).",
    )(f)


def whisper_model_option(f):
    return click.option(
        "--model",
        "-m",
        default=None,
        envvar="RAMBLE2POST_MODEL",
        help="Whisper model: a name (base, tiny.en, ...) or a path to a .pt checkpoint "
        "or a CTranslate2 model directory. Default: base.",
    )(f)


# Commands live in their own modules and register here.
from .commands.transcribe import transcribe_cmd  # noqa: E402
from .commands.run import run_cmd  # noqa: E402
from .commands.drafts import drafts_cmd, preview_cmd, publish_cmd  # noqa: E402
from .commands.experiments import experiments_cmd  # noqa: E402
from .commands.structure import structure_cmd  # noqa: E402
from .commands.rerun import rerun_cmd  # noqa: E402

cli.add_command(transcribe_cmd)
cli.add_command(run_cmd)
cli.add_command(drafts_cmd)
cli.add_command(publish_cmd)
cli.add_command(preview_cmd)
cli.add_command(experiments_cmd)
cli.add_command(structure_cmd)
cli.add_command(rerun_cmd)
