"""Everything on disk under an output directory: layout, journal, names, lock, downloads.

See docs/architecture.md, "The journal".
"""
