"""``python -m pipeline`` is the same as the ``ramble2post`` command."""

from ramble2post.cli.main import cli

if __name__ == "__main__":
    cli(prog_name="ramble2post")
