"""The schema-independent halves of generated packages.

A generated package holds what depends on its schema: classes with their codecs, typed
client methods, marshal functions and tables. What is the same for every schema lives
here once, fed by those tables: the struct base class (`struct`), lazy access to a
package's per-module files (`lazy`), the command dispatcher (`dispatch`), typed event
decoding and waiting (`events`), the query-qmp-schema answer (`introspection`) and the
client base classes (`client`).
"""
