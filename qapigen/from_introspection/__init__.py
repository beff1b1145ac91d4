"""The second front end: a schema IR from a `query-qmp-schema` answer.

`source.load_answer(SOURCE)` reads a saved answer or asks a live QMP server,
`reply` checks its entries, `names` derives names for the types QEMU masks, and
`build.schema_from_entities` turns the answer into the same checked `Schema` a
schema file gives, for the same back ends.
"""
