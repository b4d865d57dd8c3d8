"""Command-line interface.

``ramble2post AUDIO`` runs the whole pipeline; subcommands run one stage.
Domain errors (``pipeline.errors``) become one ``Error: ...`` line plus a hint
and a non-zero exit code; ``--debug`` (or ``RAMBLE2POST_DEBUG=1``) shows the
traceback instead. ``--help`` lists every environment variable (``config.ENVIRONMENT``).
"""

from __future__ import annotations

import errno
import logging
import sys

import click

from ramble2post import __version__
from ramble2post.cli.drafts import drafts_cmd, preview_cmd, publish_cmd
from ramble2post.cli.experiments import experiments_cmd
from ramble2post.cli.followup import followup_cmd
from ramble2post.cli.rerun import rerun_cmd
from ramble2post.cli.run import run_cmd
from ramble2post.cli.signals import forget_unhandled_interrupt, install_sigterm_handler
from ramble2post.cli.structure import structure_cmd
from ramble2post.cli.transcribe import transcribe_cmd
from ramble2post.config import current, environment_help
from ramble2post.errors import Ramble2PostError
from ramble2post.transcribe.torch_state import one_malloc_arena, prefer_passive_omp_wait

EXIT_INTERRUPTED = 130  # 128 + SIGINT, the shell convention


def _debug_enabled() -> bool:
    """``RAMBLE2POST_DEBUG`` / config ``debug`` (a config file that cannot be read says so without a traceback)."""
    try:
        return current().debug
    except Ramble2PostError:
        return False


ENVIRONMENT_HELP = (
    "\b\nEnvironment (a flag wins over its variable, a variable over config.toml in $RAMBLE2POST_HOME):\n"
    + environment_help()
)


class DefaultGroup(click.Group):
    """A group whose first argument may be an audio file instead of a command.

    ``ramble2post audio.m4a`` is read as ``ramble2post run audio.m4a``.
    """

    default_command = "run"

    def parse_args(self, ctx, args):
        lead: list[str] = []  # group flags before the audio path: `ramble2post --debug audio.m4a`
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
        install_sigterm_handler()
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
            forget_unhandled_interrupt()
            click.echo(
                "Interrupted. Finished stages are cached: run the same command again to resume.",
                err=True,
            )
            ctx.exit(EXIT_INTERRUPTED)
        except MemoryError:
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


@click.group(cls=DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]}, epilog=ENVIRONMENT_HELP)
@click.version_option(__version__, prog_name="ramble2post")
@click.option("--debug", is_flag=True, help="Show Python tracebacks on errors (RAMBLE2POST_DEBUG=1).")
@click.pass_context
def cli(ctx, debug):
    """Turn a spoken ramble into a three-layer blog post draft, locally.

    \b
    Example: draft a post from a recording into your blog repo
        ramble2post ramble.m4a --blog-repo ~/src/my-blog
    \b
    Then answer the draft's AUTHOR NOTEs by voice (see `ramble2post drafts`):
        ramble2post follow-up SLUG followup.m4a --blog-repo ~/src/my-blog
    \b
    Or run one stage at a time:
        ramble2post transcribe ramble.m4a -o transcript.json
        ramble2post structure transcript.json -o post.json

    Everything runs on this machine: Whisper for speech, a GGUF model through
    llama.cpp for structure, and experiments measured on this hardware.
    """
    debug = debug or _debug_enabled()
    ctx.meta["debug"] = debug
    prefer_passive_omp_wait()  # before anything imports torch (OpenMP reads it once)
    one_malloc_arena()  # before any thread starts: peak memory that does not grow with the recording
    # diagnostics go to stderr through logging; stdout carries only each command's result
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, format="%(message)s", stream=sys.stderr)


for _command in (
    transcribe_cmd,
    run_cmd,
    drafts_cmd,
    publish_cmd,
    preview_cmd,
    experiments_cmd,
    structure_cmd,
    rerun_cmd,
    followup_cmd,
):
    cli.add_command(_command)
