"""Reliability and security suites: faults survived, bad input refused, nothing lost, no
secret leaked.  Fast variants run in ``make test``; the long ones are marked
``reliability`` and run by ``make reliability``.  Their figures go to tests/RELIABILITY.md
(written only when ZUOTANG_WRITE_RELIABILITY=1)."""
