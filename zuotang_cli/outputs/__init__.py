"""Outputs: the report (CSV, JSON, JSON Lines) and the gallery page.

See docs/architecture.md, "Layers".
"""
