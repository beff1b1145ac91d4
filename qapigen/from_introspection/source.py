"""Where an introspection answer comes from: a saved file, or a live QMP server.

`SOURCE` on the command line is a QMP address when it says so (`unix:PATH`,
`tcp:HOST:PORT`, `HOST:PORT`) or names a socket; anything else is a file holding a
saved `query-qmp-schema` reply (the answer array, or the whole reply). Connected,
qapigen also asks `query-version`, for the docstrings.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from qapigen_runtime.qmp.address import AddressError, describe, parse_address
from qapigen_runtime.qmp.errors import QMPCommandError, QMPError
from qapigen_runtime.qmp.sync_client import SyncQMPClient

from ..source import QAPIError
from .reply import InfoEntity, load_reply, read_entities

CONNECT_TIMEOUT = 10.0
# The answer of a complete QEMU is about 250 KB, well within the client's limit; a
# slow machine may take a while to produce it.
FETCH_TIMEOUT = 60.0


@dataclass(frozen=True)
class Answer:
    """A checked answer and what describes it in docstrings (`introspection of
    QEMU 7.2.0`, or of the saved file)."""

    entities: list[InfoEntity]
    described: str


def is_address(source: str) -> bool:
    """Whether `source` names a QMP server rather than a saved answer."""
    if source.startswith(("unix:", "tcp:")):
        return True
    try:
        if stat.S_ISSOCK(os.stat(source).st_mode):
            return True
    except OSError:
        pass
    if os.path.exists(source):
        return False
    return not isinstance(parse_address(source), str)


def version_text(reply: object) -> str | None:
    """`7.2.0` from a `query-version` answer (None when it is not one)."""
    if not isinstance(reply, dict):
        return None
    qemu = reply.get("qemu")
    if not isinstance(qemu, dict):
        return None
    parts = [qemu.get(key) for key in ("major", "minor", "micro")]
    if not all(isinstance(part, int) for part in parts):
        return None
    return ".".join(str(part) for part in parts)


def fetch(address_text: str) -> tuple[object, str | None]:
    """The `query-qmp-schema` answer of the server at `address_text` and its
    version (None when it does not answer `query-version`). QAPIError naming the
    address when it cannot be reached or asked."""
    try:
        address = parse_address(address_text)
    except AddressError as error:
        raise QAPIError(None, str(error)) from None
    client = SyncQMPClient(command_timeout=FETCH_TIMEOUT)
    try:
        client.connect(address, timeout=CONNECT_TIMEOUT)
        answer = client.execute("query-qmp-schema")
        try:
            version = version_text(client.execute("query-version"))
        except QMPCommandError:
            version = None
    except QMPError as error:
        raise QAPIError(None, f"{describe(address)}: {error}") from None
    finally:
        client.close()
    return answer, version


def load_answer(source: str) -> Answer:
    """The checked answer `source` names (see the module's docstring)."""
    if is_address(source):
        answer, version = fetch(source)
        shown = source
        entities = read_entities(answer, f"query-qmp-schema of {shown}")
        described = (
            f"introspection of QEMU {version}"
            if version
            else "introspection of a QMP server"
        )
        return Answer(entities, described)
    entities = load_reply(source, source)
    return Answer(entities, f"introspection saved in {Path(source).name}")
