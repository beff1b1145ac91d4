"""Typed events keep the time QEMU stamped them with; 'deprecated' warns where a program
uses a deprecated symbol (never where it decodes what a server sends).

The generated packages under test are the golden 'constructs' and 'deprecated' cases,
written to a temporary folder and imported.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import importlib
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from qapigen.frontend import load_schema
from qapigen.generate import generate_package
from qapigen_runtime.qmp.events import NO_TIMESTAMP, QMPEvent, Timestamp
from qapigen_testing.generated_packages import imported_package

GOLDEN = Path(__file__).resolve().parent / "golden"


def _import_case(root: Path, case: str) -> AbstractContextManager[ModuleType]:
    package = f"typed_events_{case}"
    schema = load_schema(str(GOLDEN / case / "schema.json"))
    return imported_package(
        generate_package(schema, package, "schema.json"), root, package
    )


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """{"constructs": (types, commands, events), "deprecated": (...)} as modules."""
    root = tmp_path_factory.mktemp("typed_events")
    with contextlib.ExitStack() as imported:
        found: dict[str, Any] = {}
        for case in ("constructs", "deprecated"):
            package = imported.enter_context(_import_case(root, case))
            found[case] = tuple(
                importlib.import_module(f"{package.__name__}.{module}")
                for module in ("types", "commands", "events")
            )
        yield found


@pytest.fixture()
def constructs(packages: dict[str, Any]) -> Any:
    return packages["constructs"]


@pytest.fixture()
def deprecated(packages: dict[str, Any]) -> Any:
    return packages["deprecated"]


def _take(
    pending: list[QMPEvent],
    name: str,
    predicate: Callable[[QMPEvent], bool] | None,
) -> QMPEvent:
    """The first pending event `name` that `predicate` accepts, removed from the list."""
    for event in pending:
        if event.name == name and (predicate is None or predicate(event)):
            pending.remove(event)
            return event
    raise TimeoutError(name)


class AsyncEvents:
    """The event side of an asynchronous transport, over a fixed list of events."""

    def __init__(self, events: list[QMPEvent]) -> None:
        self.pending = list(events)

    async def events(self) -> AsyncIterator[QMPEvent]:
        while self.pending:
            yield self.pending.pop(0)

    async def wait_for(
        self,
        name: str,
        predicate: Callable[[QMPEvent], bool] | None = None,
        timeout: float | None = None,
    ) -> QMPEvent:
        return _take(self.pending, name, predicate)


class SyncEvents:
    """The event side of a blocking transport, over a fixed list of events."""

    def __init__(self, events: list[QMPEvent]) -> None:
        self.pending = list(events)

    def events(self, timeout: float | None = 0.0) -> Iterator[QMPEvent]:
        while self.pending:
            yield self.pending.pop(0)

    def wait_for(
        self,
        name: str,
        predicate: Callable[[QMPEvent], bool] | None = None,
        timeout: float | None = None,
    ) -> QMPEvent:
        return _take(self.pending, name, predicate)


def _raw(name: str, data: dict[str, object], seconds: int, us: int) -> QMPEvent:
    return QMPEvent.from_wire(
        {
            "timestamp": {"seconds": seconds, "microseconds": us},
            "event": name,
            "data": data,
        }
    )


# ------------------------------------------------------------------ the Timestamp value


def test_timestamp_is_exact_and_converts() -> None:
    stamp = Timestamp(1663330937, 526695)
    assert float(stamp) == pytest.approx(1663330937.526695, abs=1e-6)
    assert stamp.datetime == dt.datetime(2022, 9, 16, 12, 22, 17, 526695, tzinfo=dt.UTC)
    later = Timestamp(1663330938, 26695)
    assert later - stamp == dt.timedelta(microseconds=500_000)
    assert stamp < later and sorted([later, stamp]) == [stamp, later]
    assert stamp.to_wire() == {"seconds": 1663330937, "microseconds": 526695}
    assert stamp.known and not NO_TIMESTAMP.known


def test_raw_event_stamp_and_what_a_server_sends() -> None:
    raw = _raw("STOP", {}, 7, 8)
    assert raw.stamp == Timestamp(7, 8)
    assert QMPEvent.from_wire({"event": "STOP"}).stamp is NO_TIMESTAMP
    odd: dict[str, object] = {
        "event": "STOP",
        "timestamp": {"seconds": "7", "microseconds": 8},
    }
    assert QMPEvent.from_wire(odd).stamp is NO_TIMESTAMP
    kept = QMPEvent.stamped("STOP", {}, Timestamp(7, 8))
    assert (kept.seconds, kept.microseconds) == (7, 8)
    before = Timestamp.now()
    fresh = QMPEvent.stamped("STOP", {}, NO_TIMESTAMP)
    assert before <= fresh.stamp <= Timestamp.now()


# ------------------------------------------------------------- typed events are stamped


def test_every_decode_path_keeps_the_stamp(constructs: Any) -> None:
    _, _, events = constructs
    done: dict[str, object] = {"id": "j", "status": "active"}
    raws = [_raw("JOB_DONE", done, 100, 1), _raw("PING", {}, 101, 2)]
    stamps = [Timestamp(100, 1), Timestamp(101, 2)]

    by_name = events.decode_event("JOB_DONE", done, timestamp=stamps[0])
    assert by_name.timestamp == stamps[0] and by_name.id == "j"
    assert events.decode_event("JOB_DONE", done).timestamp is NO_TIMESTAMP
    assert events.from_qmp_event(raws[1]).timestamp == stamps[1]

    async def iterate() -> list[Any]:
        return [e async for e in events.typed_events(AsyncEvents(raws))]

    assert [e.timestamp for e in asyncio.run(iterate())] == stamps
    synced = list(events.typed_events_sync(SyncEvents(raws)))
    assert [e.timestamp for e in synced] == stamps

    seen: list[Timestamp] = []

    def accepts(event: Any) -> bool:
        seen.append(event.timestamp)  # the predicate sees the stamp too
        return True

    waited = asyncio.run(
        events.wait_for(AsyncEvents(raws), events.JobDoneEvent, accepts)
    )
    assert waited.timestamp == stamps[0] and seen == [stamps[0]]
    ping = events.wait_for_sync(SyncEvents(raws), events.PingEvent)
    assert type(ping) is events.PingEvent and ping.timestamp == stamps[1]


def test_the_stamp_is_not_data(constructs: Any) -> None:
    types, _, events = constructs
    stamped = events.decode_event(
        "JOB_DONE", {"id": "j", "status": "none"}, timestamp=Timestamp(5, 6)
    )
    built = events.JobDoneEvent(id="j", status=types.Status.NONE)
    assert built.timestamp is NO_TIMESTAMP
    assert stamped == built  # equal data, whatever the stamps
    assert stamped.to_wire() == {"id": "j", "status": "none"}
    assert "timestamp" not in events.PingEvent().to_wire()


def test_to_qmp_event_puts_the_envelope_back(constructs: Any) -> None:
    types, _, events = constructs
    received = events.from_qmp_event(
        _raw("JOB_DONE", {"id": "j", "status": "none"}, 9, 10)
    )
    message = events.to_qmp_event(received).to_wire()
    assert message == {
        "timestamp": {"seconds": 9, "microseconds": 10},
        "event": "JOB_DONE",
        "data": {"id": "j", "status": "none"},
    }
    before = Timestamp.now()
    built = events.to_qmp_event(events.JobDoneEvent(id="k", status=types.Status.NONE))
    assert built.name == "JOB_DONE" and before <= built.stamp <= Timestamp.now()
    assert events.to_qmp_event(events.PingEvent()).to_wire()["event"] == "PING"


def test_a_data_member_named_timestamp_keeps_working(constructs: Any) -> None:
    types, _, events = constructs
    data: dict[str, object] = {"timestamp": 42, "count": 3}
    tick = events.from_qmp_event(_raw("TICK", data, 11, 12))
    assert tick.timestamp_ == 42 and tick.timestamp == Timestamp(11, 12)
    assert tick.to_wire() == data
    assert events.TickEvent(timestamp_=42, count=3).to_wire() == data
    # the struct of the same data keeps the plain name
    assert types.TickData.from_wire(data).timestamp == 42


def test_stamps_survive_a_real_qmp_connection(constructs: Any) -> None:
    """A server sends a typed event in QEMU's envelope; the typed client gets the very
    stamp the server gave it."""
    from qapigen_runtime.qmp import client as client_module
    from qapigen_runtime.qmp import server as server_module

    types, commands, events = constructs

    class Idle:
        """No command is called in this test."""

    async def scenario() -> None:
        server = server_module.QMPServer(commands.CommandDispatcher(Idle()))
        address = await server.listen(("127.0.0.1", 0))
        qmp = client_module.QMPClient()
        try:
            await qmp.connect(address)
            event = events.JobDoneEvent(id="j", status=types.Status.ACTIVE)
            event.timestamp = Timestamp(1663330937, 526695)
            server.broadcast(events.to_qmp_event(event))
            server.emit("PING")  # stamped by the server, as QEMU does
            done = await events.wait_for(qmp, events.JobDoneEvent, timeout=5)
            assert done == event and done.timestamp == Timestamp(1663330937, 526695)
            ping = await events.wait_for(qmp, events.PingEvent, timeout=5)
            assert (
                ping.timestamp.known
                and abs(float(ping.timestamp) - float(Timestamp.now())) < 60
            )
        finally:
            await qmp.close()
            await server.close()

    asyncio.run(scenario())


# ------------------------------------------------------------------ deprecated symbols


class Transport:
    """Records commands; answers every one with `reply`."""

    def __init__(self, reply: object = None) -> None:
        self.reply = {} if reply is None else reply
        self.sent: list[tuple[str, object]] = []

    def execute(self, name: str, arguments: object = None) -> object:
        self.sent.append((name, arguments))
        return self.reply


class AsyncTransport(Transport):
    async def execute(self, name: str, arguments: object = None) -> object:
        return Transport.execute(self, name, arguments)


def _warned(action: Callable[[], object]) -> list[str]:
    """The DeprecationWarnings `action` raises, each pointing at this file."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        action()
    for warning in caught:
        assert warning.category is DeprecationWarning
        # attributed to the caller's line, not to generated or runtime code
        assert warning.filename == __file__, (warning.filename, str(warning.message))
    return [str(warning.message) for warning in caught]


def test_building_structs_warns_about_deprecated_members_and_values(
    deprecated: Any,
) -> None:
    types, _, _ = deprecated
    Mode = types.Mode
    assert _warned(lambda: types.CopyBase(mode=Mode.FAST)) == []
    assert _warned(lambda: types.CopyBase(mode=Mode.LEGACY)) == [
        "value 'legacy' of member 'mode' of CopyBase is deprecated"
    ]
    assert _warned(
        lambda: types.Copy(
            source="a",
            old_limit=1,
            legacy_flag=True,
            modes=[Mode.FAST, Mode.GONE],
            speed=Mode.LEGACY,
        )
    ) == [
        "value 'gone' of member 'modes' of Copy is deprecated",
        "value 'legacy' of member 'speed' of Copy is deprecated",
        "member 'old-limit' of Copy is deprecated",
        "member 'legacy-flag' of Copy is deprecated",  # required, so always set
    ]
    # an alternate's other branch, and a str spelled like a deprecated value, are not
    assert _warned(lambda: types.Copy(source="legacy", speed=5, legacy_flag=False)) == [
        "member 'legacy-flag' of Copy is deprecated"
    ]
    assert _warned(types.CopyInfo_Legacy) == [
        "value 'legacy' of member 'mode' of CopyInfo.legacy is deprecated"
    ]
    assert _warned(lambda: types.CopyInfo_Fast(rate=1)) == []


def test_clients_warn_about_deprecated_arguments_and_values(deprecated: Any) -> None:
    types, commands, _ = deprecated
    Mode = types.Mode
    client = commands.SyncClient(Transport({"mode": "fast", "rate": 1}))
    assert _warned(lambda: client.copy(source="a", mode=Mode.FAST, speed=3)) == []
    assert _warned(
        lambda: client.copy(
            source="a", mode=Mode.LEGACY, modes=[Mode.GONE], speed=Mode.LEGACY
        )
    ) == [
        "value 'legacy' of argument 'mode' of QMP command 'copy' is deprecated",
        "value 'gone' of argument 'modes' of QMP command 'copy' is deprecated",
        "value 'legacy' of argument 'speed' of QMP command 'copy' is deprecated",
    ]
    assert _warned(lambda: client.copy(source="a", old_limit=5)) == [
        "argument 'old-limit' of QMP command 'copy' is deprecated"
    ]
    assert _warned(client.copy_legacy) == ["QMP command 'copy-legacy' is deprecated"]
    aclient = commands.AsyncClient(AsyncTransport({"mode": "fast", "rate": 1}))

    async def call() -> None:
        await aclient.copy(source="a", mode=Mode.LEGACY)  # the line warned about

    assert _warned(lambda: asyncio.run(call())) == [
        "value 'legacy' of argument 'mode' of QMP command 'copy' is deprecated"
    ]


def test_waiting_for_a_deprecated_event_warns(deprecated: Any) -> None:
    _, _, events = deprecated
    assert {"COPY_LEGACY_DONE"} == events.DEPRECATED_EVENTS
    raws = [
        _raw("COPY_DONE", {"mode": "fast"}, 1, 0),
        _raw("COPY_LEGACY_DONE", {}, 2, 0),
    ]
    assert (
        _warned(lambda: events.wait_for_sync(SyncEvents(raws), events.CopyDoneEvent))
        == []
    )
    message = "QMP event 'COPY_LEGACY_DONE' is deprecated"
    assert _warned(
        lambda: events.wait_for_sync(SyncEvents(raws), events.CopyLegacyDoneEvent)
    ) == [message]

    async def wait() -> None:
        await events.wait_for(AsyncEvents(raws), events.CopyLegacyDoneEvent)

    assert _warned(lambda: asyncio.run(wait())) == [message]


def test_decoding_what_a_server_sends_never_warns(deprecated: Any) -> None:
    types, commands, events = deprecated
    wire = {
        "source": "a",
        "mode": "legacy",
        "modes": ["gone"],
        "speed": "legacy",
        "old-limit": 1,
        "legacy-flag": True,
    }
    raws = [
        _raw("COPY_DONE", {"mode": "legacy", "old-limit": 3}, 1, 0),
        _raw("COPY_LEGACY_DONE", {}, 2, 0),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        copy = types.Copy.from_wire(wire)
        assert copy.to_wire() == wire  # and re-encoding what was received is silent
        assert type(types.decode_copy_info({"mode": "legacy"})) is types.CopyInfo_Legacy
        client = commands.SyncClient(Transport({"mode": "gone"}))
        assert type(client.copy(source="a")) is types.CopyInfo_Gone
        received = list(events.typed_events_sync(SyncEvents(list(raws))))
        assert [type(e) for e in received] == [
            events.CopyDoneEvent,
            events.CopyLegacyDoneEvent,
        ]
        assert received[0].old_limit == 3
        # a server decoding a client's deprecated arguments does not warn either
        handled: list[object] = []

        class Handler:
            async def copy_boxed(self, arguments: object) -> None:
                handled.append(arguments)

        dispatcher = commands.CommandDispatcher(Handler())
        assert asyncio.run(dispatcher.dispatch("copy-boxed", wire)) == {}
        assert handled == [copy]


def test_python_shows_each_warning_once_per_line(deprecated: Any) -> None:
    types, _, _ = deprecated
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # what Python does for DeprecationWarning
        for _ in range(3):
            types.CopyBase(mode=types.Mode.LEGACY)
        types.CopyBase(mode=types.Mode.LEGACY)
    assert [w.lineno for w in caught] == sorted({w.lineno for w in caught})
    assert len(caught) == 2


def test_docstrings_mark_what_is_deprecated(deprecated: Any) -> None:
    types, commands, events = deprecated
    assert "LEGACY: (deprecated) the old way" in types.Mode.__doc__
    assert "old_limit: (deprecated) a limit nobody needs" in types.Copy.__doc__
    assert "tag value is deprecated" in types.CopyInfo_Legacy.__doc__
    assert "old_limit: (deprecated) what the old limit was" in (
        events.CopyDoneEvent.__doc__
    )
    assert "waiting for it warns" in events.CopyLegacyDoneEvent.__doc__
    assert "calling it warns" in commands.SyncClient.copy_legacy.__doc__
    assert "old_limit: (deprecated)" in commands.SyncClient.copy.__doc__
