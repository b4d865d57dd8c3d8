"""Code shared by the scripts (importable as ``_lib`` when a script runs: scripts/ is on sys.path)."""
