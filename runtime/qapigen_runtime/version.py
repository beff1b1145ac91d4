"""The installed version of qapigen, for every command's ``--version``.

There is one source: the ``version`` of pyproject.toml, as the installed distribution's
metadata carries it (an editable install has that metadata too). The commands look it
up only when asked, so ``--help`` and normal runs do not pay for the metadata scan.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

DISTRIBUTION = "qapigen"


def distribution_version() -> str:
    """The installed qapigen distribution's version, or "unknown" when the code runs
    from a folder that was never installed."""
    from importlib import metadata  # a scan of sys.path: only when asked

    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


class VersionAction(argparse.Action):
    """``--version``: print ``PROG VERSION`` to stdout and exit 0, as argparse's own
    "version" action does, but reading the version only when the option is used."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        kwargs.setdefault("help", "print the version and exit")
        super().__init__(
            option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs
        )

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> NoReturn:
        sys.stdout.write(f"{parser.prog} {distribution_version()}\n")
        sys.stdout.flush()
        parser.exit()


def add_version_option(parser: argparse.ArgumentParser) -> None:
    """Give `parser` a ``--version`` option."""
    parser.add_argument("--version", action=VersionAction)
