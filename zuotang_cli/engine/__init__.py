"""The engine: one batch, its calls through the rate gate, budgets, paid results saved.

See docs/architecture.md, "The engine".
"""
