"""Backends shipped with cloudml, installed as ``cloudml.adapters.<name>`` and found by entry point."""
