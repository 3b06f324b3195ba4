"""Tools that talk to the API from outside it (none is part of the served package).

    submit  ``make test``: classify the test questions through the API into the submission CSV
    server  health checks, waiting, and ``python -m api.serve`` started for a run (``make test``, benches, tests)
"""
