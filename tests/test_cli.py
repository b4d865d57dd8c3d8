"""CLI shape: help everywhere, default command routing, version."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from ramble2post import __version__
from ramble2post.cli.main import cli


def _all_commands(group: click.Group, prefix=()):
    for name, cmd in group.commands.items():
        yield (*prefix, name), cmd
        if isinstance(cmd, click.Group):
            yield from _all_commands(cmd, (*prefix, name))


@pytest.mark.parametrize("path", [p for p, _ in _all_commands(cli)], ids=" ".join)
def test_every_command_has_help(path):
    cmd = cli
    for name in path:
        cmd = cmd.commands[name]
    assert cmd.help and len(cmd.help.strip()) > 20, f"{' '.join(path)} has no real help text"
    for param in cmd.params:
        if isinstance(param, click.Option) and param.name not in ("help",):
            assert param.help, f"option {param.opts} of {' '.join(path)} has no help="
    result = CliRunner().invoke(cli, [*path, "--help"], catch_exceptions=False)
    assert result.exit_code == 0
    assert "Usage:" in result.output


def test_top_level_help_has_an_example():
    result = CliRunner().invoke(cli, ["--help"], catch_exceptions=False)
    assert result.exit_code == 0
    assert "ramble2post ramble.m4a" in result.output


def test_version():
    result = CliRunner().invoke(cli, ["--version"], catch_exceptions=False)
    assert result.exit_code == 0 and __version__ in result.output


def test_audio_path_routes_to_the_main_command(tmp_path):
    missing = tmp_path / "nothing.m4a"
    result = CliRunner().invoke(cli, [str(missing)])
    assert result.exit_code != 0
    assert "No such command" not in result.output
    # the run command's own check answered: the audio path is named in its one error line
    assert "nothing.m4a" in result.output and "Error:" in result.output
