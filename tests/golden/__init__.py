"""Golden files: compiled output of fixed specs, one folder per case, one file per adapter.

Regenerate after an intended change (and review the diff like code):

    python -m pytest tests/golden --update-golden
"""
