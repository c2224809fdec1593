"""The application: the one session every batch runs through, settings, options, signals.

See docs/architecture.md, "One way in".
"""
