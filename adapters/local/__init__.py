"""The local backend: runs the same spec for real on one machine (processes, files, SQLite, HTTP).

Example:
    >>> import cloudml
    >>> a = cloudml.get_adapter("local")
    >>> a.name, a.capabilities.supports("condition")
    ('local', True)
"""

from __future__ import annotations

from cloudml.adapters.local.backend import LocalAdapter, LocalOptions, LocalRun

__all__ = ["LocalAdapter", "LocalOptions", "LocalRun"]
