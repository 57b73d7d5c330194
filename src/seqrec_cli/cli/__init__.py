"""Typer app, one module per command. Torch is imported lazily so `--help` is instant."""
