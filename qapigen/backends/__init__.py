"""Backends of the bindings generator, one module per output kind.

`types`, `commands`, `events` and `introspection` each turn the checked schema into
one module of the generated package: they decide names (through `qapigen.naming`),
codec expressions and imports; the templates in `templates/` decide how the code reads.
`common` holds what they share (type names, type uses, imports), `docs` and `literals`
the docstring text and JSON literals, `view` the records the templates render.
"""
