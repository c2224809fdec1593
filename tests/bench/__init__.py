"""``make bench``: the client measured against the QPS cap and against what users write.

Run with ``python -m tests.bench [--quick]``.  No module here is named ``test_*``, so
pytest never collects the bench as part of ``make test``.
"""
