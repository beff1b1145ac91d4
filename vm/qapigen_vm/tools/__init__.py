"""Command-line tools built on the typed bindings: ``qapigen-migrate`` and its parts.

`timeline` holds what a migration run records (polled samples and event marks),
`progress` turns it into a progress line and a summary, `plot` into a PNG timeline
(matplotlib is imported only there, and only when a plot is asked for), and `migrate`
is the command that drives a source and a destination over QMP.
"""
