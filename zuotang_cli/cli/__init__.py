"""The command line: Typer commands, the run on a terminal or in cron, progress, summary.

See docs/architecture.md, "Layers".
"""
