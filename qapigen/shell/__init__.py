"""`qapigen shell ADDRESS`: qmp-shell's job, typed by the schema of the server.

`catalog` (what the server offers, from its introspection or a generated package),
`command_line` (one line of input -> command and arguments, typed by the schema),
`validate` (arguments checked against the schema before they are sent), `complete`
(tab completion), `session` (the connection, the interactive and scripted loops).
"""
