"""Inputs: URLs, list files, stdin, files and folders, streamed in order.

See docs/architecture.md, "One input".
"""
