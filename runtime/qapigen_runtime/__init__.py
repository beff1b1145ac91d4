"""Runtime support for qapigen-generated bindings: codec helpers, QMP transport."""
