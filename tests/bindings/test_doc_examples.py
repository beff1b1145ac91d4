"""Every QMP example in the bundled schema's doc comments decodes with the generated
types.

Examples are QEMU 5.0-style lines in `Example:` sections: `-> {...}` is what a client
sends, `<- {...}` what QEMU answers or emits, each possibly spanning several lines.
A command is decoded the way a server built on the bindings decodes it (strictly,
through the generated dispatcher); a `return` as the reply of the command before it
(or of the documented command); an event's `data` with the event's class.

A few 5.0 examples are wrong about the schema they document. They are listed in
`KNOWN_FAULTS` with the fault the codec must find, so the test keeps failing for any
other example that does not decode, and for these if the fault changes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pytest

from qapigen.frontend import load_schema
from qapigen.schema import Command, Schema
from qapigen_migration import commands, events, types
from qapigen_runtime import codec
from qapigen_testing.wire_strategies import GeneratedCodec

REPO = Path(__file__).resolve().parents[2]
BUNDLED_SCHEMA = REPO / "schema" / "migration.json"

# Example id -> (the JSON path the codec must refuse, why the example is wrong).
_RAM_ABRIDGED = (
    "the example's 'ram' shows a few counters, but MigrationStats requires all of"
    " them (skipped, dirty-pages-rate, mbps, postcopy-requests, page-size,"
    " multifd-bytes, pages-per-second, ...)"
)
KNOWN_FAULTS: dict[str, tuple[str, str]] = {
    "query-migrate-4": ("ram.skipped", _RAM_ABRIDGED),
    "query-migrate-8": ("ram.skipped", _RAM_ABRIDGED),
    "query-migrate-10": ("ram.skipped", _RAM_ABRIDGED),
    "query-migrate-12": ("ram.skipped", _RAM_ABRIDGED),
    "query-colo-status-2": (
        "last-mode",
        "COLOStatus requires 'last-mode' (added in 4.2), the example predates it",
    ),
}

# Examples that carry no arrow in the 5.0 docs: read as what QEMU sends.
UNARROWED = "(no arrow)"


@dataclass(frozen=True)
class QMPExample:
    """One QMP message of an Example section."""

    id: str
    where: str
    symbol: str
    direction: str
    text: str
    command: str | None  # for a reply: the command it answers


def _messages(text: str) -> Iterator[tuple[int, str, str]]:
    """(line offset, direction, JSON text) of each message in an Example section.

    A message starts at a `->` or `<-` line (or at a `{` line outside one) and takes
    following lines until its JSON is complete; a blank line ends it regardless, so a
    malformed example is still yielded, and fails to parse in the test.
    """
    lines = text.splitlines()
    current: list[str] = []
    direction = ""
    start = 0
    for offset, line in enumerate(lines + [""]):
        stripped = line.strip()
        if current:
            if stripped and not stripped.startswith(("->", "<-")):
                current.append(line)
                if _complete(current):
                    yield start, direction, "\n".join(current)
                    current = []
                continue
            yield start, direction, "\n".join(current)
            current = []
        if stripped.startswith(("->", "<-")):
            direction, current, start = stripped[:2], [stripped[2:]], offset
        elif stripped.startswith("{"):
            direction, current, start = UNARROWED, [stripped], offset
        if current and _complete(current):
            yield start, direction, "\n".join(current)
            current = []


def _complete(lines: list[str]) -> bool:
    try:
        json.loads("\n".join(lines))
    except json.JSONDecodeError:
        return False
    return True


def collect_examples(schema: Schema) -> list[QMPExample]:
    found: list[QMPExample] = []
    for doc in schema.docs:
        symbol = doc.symbol or "free-form"
        command = symbol if isinstance(schema.lookup_entity(symbol), Command) else None
        ordinal = 0
        for section in doc.sections:
            if not (section.tag or "").startswith("Example"):
                continue
            for offset, direction, text in _messages(section.text):
                ordinal += 1
                if direction == "->":
                    command = _executed(text) or command
                found.append(
                    QMPExample(
                        f"{symbol}-{ordinal}",
                        f"{section.info.location()} (+{offset + 1} lines)",
                        symbol,
                        direction,
                        text,
                        command,
                    )
                )
    return found


def _executed(text: str) -> str | None:
    try:
        message = json.loads(text)
    except json.JSONDecodeError:
        return None
    name = message.get("execute") if isinstance(message, dict) else None
    return name if isinstance(name, str) else None


SCHEMA = load_schema(str(BUNDLED_SCHEMA))
EXAMPLES = collect_examples(SCHEMA)
WIRE = GeneratedCodec(SCHEMA, types)


class Served(Exception):
    """Raised by the handler: the dispatcher decoded the arguments and called it."""


class StopAtHandler:
    """A handler for every command that stops the dispatch once it is reached."""

    def __getattr__(self, method: str) -> object:
        async def handle(*args: object, **kwargs: object) -> object:
            raise Served(method)

        return handle


def decode(example: QMPExample) -> None:
    """Decode `example` with the generated bindings; raise what they raise."""
    message = json.loads(example.text)
    assert isinstance(message, dict), f"a QMP message is an object: {example.text}"
    if example.direction == "->":
        name = message["execute"]
        dispatcher = commands.CommandDispatcher(
            cast(commands.CommandHandler, StopAtHandler())
        )
        with pytest.raises(Served):
            asyncio.run(dispatcher.dispatch(name, message.get("arguments", {})))
    elif "return" in message:
        assert example.direction == "<-", "a reply comes from QEMU"
        assert example.command is not None, "a reply with no command before it"
        command = SCHEMA.lookup_entity(example.command)
        assert isinstance(command, Command), example.command
        if command.ret_type is None:
            assert message["return"] == {}
        else:
            WIRE.decoder(command.ret_type)(message["return"], "", False)
    elif "event" in message:
        decoded = events.decode_event(message["event"], message.get("data"))
        assert decoded is not None, f"no event {message['event']} in the schema"
    else:
        assert "error" in message, f"not a QMP message: {example.text}"
        assert {"class", "desc"} <= set(message["error"])


def test_every_example_section_yields_messages() -> None:
    documented = {
        doc.symbol or "free-form"
        for doc in SCHEMA.docs
        for section in doc.sections
        if (section.tag or "").startswith("Example")
    }
    assert documented, "the bundled schema documents examples"
    assert documented == {example.symbol for example in EXAMPLES}
    assert {"->", "<-"} <= {example.direction for example in EXAMPLES}
    assert set(KNOWN_FAULTS) <= {example.id for example in EXAMPLES}


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.id for e in EXAMPLES])
def test_example_decodes(example: QMPExample) -> None:
    fault = KNOWN_FAULTS.get(example.id)
    if fault is None:
        decode(example)
        return
    path, why = fault
    with pytest.raises(codec.DecodeError) as caught:
        decode(example)
    assert caught.value.path == path, f"{example.where}: {why}"
