"""Placeholder until the bindings are generated."""
