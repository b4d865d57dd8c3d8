"""The command line: one click group (``main``), shared options, one module per command."""
