"""The Typer commands, one a module."""
