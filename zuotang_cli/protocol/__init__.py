"""The remote API: its rules, requests, replies classified, checks before a paid call.

See docs/api-contract.md.
"""
