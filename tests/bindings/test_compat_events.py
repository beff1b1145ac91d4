"""Events under QEMU's `-compat` output policies, on a server built on a generated
package.

What QEMU 7.2 does (its generated event senders, and its QMP output visitor, which
carries the policy): an event whose features include one the output policy hides
(``deprecated-output=hide``, ``unstable-output=hide``) is not sent at all, and
members with such a feature are left out of event data at any depth, required
ones too, as they are left out of replies. Here a small schema of our own has one
of each: a deprecated, an unstable and a doubly special event, an event with
deprecated and unstable members (one of them required) next to a struct and an
array of structs whose members are deprecated and unstable, and a boxed event
whose struct has them.

No live check against QEMU 7.2: its schema has one special event, MEM_UNPLUG_ERROR
(deprecated), which QEMU raises only when a guest's memory unplug fails (a
pseries machine's, or an ACPI eject the guest asks for), so no machine this
suite can start without a guest makes QEMU send it; and no event data member of
7.2's schema, at any depth, has a special feature. What this module checks
follows QEMU's specification of the policies ("Features" in qapi-code-gen.rst)
and QEMU 7.2's generator, which returns before building the event when the
policy hides it.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from qapigen.frontend import load_schema
from qapigen.generate import generate_package
from qapigen_runtime import codec
from qapigen_runtime.bindings.policy import CompatPolicy
from qapigen_runtime.qmp import QMPClient
from qapigen_runtime.qmp.events import QMPEvent, Timestamp
from qapigen_runtime.qmp.server import QMPServer
from qapigen_testing.generated_packages import imported_package

SCHEMA = """
{ 'struct': 'Disk',
  'data': { 'name': 'str',
            'legacy-id': { 'type': 'str', 'features': [ 'deprecated' ] },
            '*x-queue': { 'type': 'int', 'features': [ 'unstable' ] } } }
{ 'event': 'OLD_EVENT', 'features': [ 'deprecated' ] }
{ 'event': 'X_TRACE', 'data': { 'n': 'int' }, 'features': [ 'unstable' ] }
{ 'event': 'X_OLD_TRACE', 'features': [ 'deprecated', 'unstable' ] }
{ 'event': 'DISK_CHANGED',
  'data': { 'disk': 'Disk', 'disks': [ 'Disk' ], 'size': 'int',
            'old-size': { 'type': 'int', 'features': [ 'deprecated' ] },
            '*x-hint': { 'type': 'str', 'features': [ 'unstable' ] } } }
{ 'event': 'DISK_DONE', 'data': 'Disk', 'boxed': true }
{ 'command': 'query-disk', 'returns': 'Disk' }
"""

DISK = {"name": "d0", "legacy-id": "ide0", "x-queue": 4}
DISK_CHANGED = {
    "disk": DISK,
    "disks": [DISK, {"name": "d1", "legacy-id": "ide1"}],
    "size": 10,
    "old-size": 5,
    "x-hint": "grow",
}
PLAIN_DISK = {"name": "d0"}

HIDE_DEPRECATED = CompatPolicy(deprecated_output="hide")
HIDE_UNSTABLE = CompatPolicy(unstable_output="hide")
HIDE_BOTH = CompatPolicy(deprecated_output="hide", unstable_output="hide")


@pytest.fixture(scope="module")
def pkg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    root = tmp_path_factory.mktemp("compat_events")
    schema_file = root / "events.json"
    schema_file.write_text(SCHEMA)
    files = generate_package(load_schema(str(schema_file)), "compat_ev", "e.json")
    with imported_package(files, root, "compat_ev") as package:
        yield SimpleNamespace(
            types=importlib.import_module(f"{package.__name__}.types"),
            commands=importlib.import_module(f"{package.__name__}.commands"),
            events=importlib.import_module(f"{package.__name__}.events"),
        )


def _events(pkg: SimpleNamespace) -> dict[str, Any]:
    """One event of each kind, decoded from what a server would send unhidden."""
    decode = pkg.events.decode_event
    return {
        "OLD_EVENT": decode("OLD_EVENT"),
        "X_TRACE": decode("X_TRACE", {"n": 1}),
        "X_OLD_TRACE": decode("X_OLD_TRACE"),
        "DISK_CHANGED": decode("DISK_CHANGED", DISK_CHANGED),
        "DISK_DONE": decode("DISK_DONE", DISK),
    }


def _sent(pkg: SimpleNamespace, policy: CompatPolicy) -> dict[str, object]:
    """Event name -> the data sent under `policy`, None for an event not sent."""
    sent: dict[str, object] = {}
    for name, event in _events(pkg).items():
        message = pkg.events.to_qmp_event(event, policy)
        sent[name] = None if message is None else message.data
    return sent


def test_the_package_lists_the_features_of_events_and_their_data(
    pkg: SimpleNamespace,
) -> None:
    events = pkg.events
    assert events.EVENT_FEATURES == {
        "OLD_EVENT": ["deprecated"],
        "X_TRACE": ["unstable"],
        "X_OLD_TRACE": ["deprecated", "unstable"],
    }
    assert events.EVENT_DATA_FEATURES == {
        "DISK_CHANGED": {"old-size": ["deprecated"], "x-hint": ["unstable"]},
        "DISK_DONE": {"legacy-id": ["deprecated"], "x-queue": ["unstable"]},
    }
    assert {"OLD_EVENT", "X_OLD_TRACE"} == events.DEPRECATED_EVENTS
    flags = {
        cls.NAME: (cls.DEPRECATED, cls.UNSTABLE)
        for cls in (events.OldEventEvent, events.XTraceEvent, events.XOldTraceEvent)
    }
    assert flags == {
        "OLD_EVENT": (True, False),
        "X_TRACE": (False, True),
        "X_OLD_TRACE": (True, True),
    }
    assert not events.DiskChangedEvent.DEPRECATED
    assert not events.DiskChangedEvent.UNSTABLE


def test_accept_sends_everything_as_without_a_policy(pkg: SimpleNamespace) -> None:
    for event in _events(pkg).values():
        with_policy = pkg.events.to_qmp_event(event, CompatPolicy())
        assert with_policy is not None
        without = pkg.events.to_qmp_event(event)
        assert (with_policy.name, with_policy.data) == (without.name, without.data)
    assert _sent(pkg, CompatPolicy())["DISK_CHANGED"] == DISK_CHANGED


def test_deprecated_output_hide(pkg: SimpleNamespace) -> None:
    visible_disk = {"name": "d0", "x-queue": 4}
    assert _sent(pkg, HIDE_DEPRECATED) == {
        "OLD_EVENT": None,
        "X_TRACE": {"n": 1},
        "X_OLD_TRACE": None,
        "DISK_CHANGED": {
            "disk": visible_disk,
            "disks": [visible_disk, {"name": "d1"}],
            "size": 10,
            "x-hint": "grow",
        },
        "DISK_DONE": visible_disk,
    }


def test_unstable_output_hide(pkg: SimpleNamespace) -> None:
    visible_disk = {"name": "d0", "legacy-id": "ide0"}
    assert _sent(pkg, HIDE_UNSTABLE) == {
        "OLD_EVENT": {},
        "X_TRACE": None,
        "X_OLD_TRACE": None,
        "DISK_CHANGED": {
            "disk": visible_disk,
            "disks": [visible_disk, {"name": "d1", "legacy-id": "ide1"}],
            "size": 10,
            "old-size": 5,
        },
        "DISK_DONE": visible_disk,
    }


def test_both_hidden(pkg: SimpleNamespace) -> None:
    sent = _sent(pkg, HIDE_BOTH)
    assert [name for name, data in sent.items() if data is not None] == [
        "DISK_CHANGED",
        "DISK_DONE",
    ]
    assert sent["DISK_CHANGED"] == {
        "disk": PLAIN_DISK,
        "disks": [PLAIN_DISK, {"name": "d1"}],
        "size": 10,
    }
    assert sent["DISK_DONE"] == PLAIN_DISK


def test_hiding_keeps_the_stamp_and_only_lasts_while_encoding(
    pkg: SimpleNamespace,
) -> None:
    event = pkg.events.decode_event(
        "DISK_CHANGED", DISK_CHANGED, timestamp=Timestamp(1663330937, 526695)
    )
    message = pkg.events.to_qmp_event(event, HIDE_BOTH)
    assert message.stamp == Timestamp(1663330937, 526695)
    assert codec.HIDDEN.get() is None
    assert event.to_wire() == DISK_CHANGED  # the event itself is untouched


def test_a_hidden_event_is_said_so_before_it_is_encoded(pkg: SimpleNamespace) -> None:
    output = pkg.events.event_output(HIDE_DEPRECATED)
    assert output is pkg.events.event_output(HIDE_DEPRECATED)  # built once per policy
    assert output.hidden_events == {"OLD_EVENT", "X_OLD_TRACE"}
    assert output.hides("OLD_EVENT") and not output.hides("X_TRACE")
    assert not output.hides("NO_SUCH_EVENT")
    assert pkg.events.event_output(HIDE_UNSTABLE).hidden_events == {
        "X_TRACE",
        "X_OLD_TRACE",
    }


def test_replies_and_events_hide_the_same_members(pkg: SimpleNamespace) -> None:
    """The dispatcher's reply to query-disk and DISK_DONE carry the same Disk."""

    class Handler(pkg.commands.CommandHandlerBase):  # type: ignore[name-defined,misc]
        async def query_disk(self) -> Any:
            return pkg.types.Disk.from_wire(DISK)

    for policy in (HIDE_DEPRECATED, HIDE_UNSTABLE, HIDE_BOTH):
        dispatcher = pkg.commands.CommandDispatcher(Handler(), policy=policy)
        reply = asyncio.run(dispatcher.dispatch("query-disk", {}))
        assert reply == _sent(pkg, policy)["DISK_DONE"]


def test_a_server_sends_what_its_policy_lets_out(pkg: SimpleNamespace) -> None:
    """`QMPServer(events=event_output(policy))`: typed events through `send`, raw
    ones through `emit`; the client receives only what QEMU would send."""
    received: list[dict[str, object]] = []

    async def scenario() -> None:
        dispatcher = pkg.commands.CommandDispatcher(
            pkg.commands.CommandHandlerBase(), policy=HIDE_DEPRECATED
        )
        server = QMPServer(dispatcher, events=pkg.events.event_output(HIDE_DEPRECATED))
        address = await server.listen(("127.0.0.1", 0))
        try:
            async with QMPClient() as client:
                await client.connect(address)
                for event in _events(pkg).values():
                    server.send(event)
                assert server.emit("OLD_EVENT") is None
                assert server.emit("X_TRACE", {"n": 2}) is not None
                server.emit("END")
                await client.wait_for("END", timeout=5)
                for raw in client.clear_events():
                    received.append({"event": raw.name, "data": raw.data})
        finally:
            await server.close()

    asyncio.run(scenario())
    assert [message["event"] for message in received] == [
        "X_TRACE",
        "DISK_CHANGED",
        "DISK_DONE",
        "X_TRACE",
    ]
    assert received[1]["data"] == _sent(pkg, HIDE_DEPRECATED)["DISK_CHANGED"]


def test_send_needs_an_encoder(pkg: SimpleNamespace) -> None:
    server = QMPServer(
        pkg.commands.CommandDispatcher(pkg.commands.CommandHandlerBase())
    )
    with pytest.raises(TypeError, match="events encoder"):
        server.send(_events(pkg)["X_TRACE"])
    # without one, emit sends whatever it is given
    assert isinstance(server.emit("OLD_EVENT"), QMPEvent)
