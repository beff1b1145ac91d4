"""Shared by the QMP tests: what QEMU 7.2 answers to bad input (observed), a small
hand-written dispatcher, and a raw line-oriented socket for wire-exact checks."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Collection, Coroutine, Sequence
from dataclasses import dataclass
from typing import TypeVar

from qapigen_runtime.qmp import (
    CommandNotFound,
    DeviceNotFound,
    GenericError,
    QMPCommandError,
    QMPServer,
)
from qapigen_runtime.qmp.address import Address, open_socket

T = TypeVar("T")

STATUS = {"status": "running", "singlestep": False, "running": True}


def _error(desc: str, error_class: str = "GenericError") -> dict[str, object]:
    return {"error": {"class": error_class, "desc": desc}}


def _with_id(request_id: object, message: dict[str, object]) -> dict[str, object]:
    return {"id": request_id, **message}


def _parse_error(what: str) -> dict[str, object]:
    return _error(f"JSON parse error, {what}")


NOT_FOUND = _error("The command nonexistent has not been found", "CommandNotFound")


@dataclass(frozen=True)
class Observed:
    """One input and the replies QEMU 7.2 sent for it, in order."""

    label: str
    data: bytes
    replies: list[dict[str, object]]


# Facts observed on QEMU 7.2 (qemu-system-x86_64 -M none, monitor negotiated with
# oob enabled). test_qmp_qemu.py re-checks every entry against a real QEMU;
# test_qmp_server.py checks that QMPServer answers the same.
OBSERVED_AFTER_NEGOTIATION: list[Observed] = [
    Observed(
        "non-object array", b"[1,2]\n", [_error("QMP input must be a JSON object")]
    ),
    Observed(
        "non-object string", b'"str"\n', [_error("QMP input must be a JSON object")]
    ),
    Observed("non-object number", b"42\n", [_error("QMP input must be a JSON object")]),
    Observed("empty object", b"{}\n", [_error("QMP input lacks member 'execute'")]),
    Observed(
        "missing execute keeps id",
        b'{"id":3}\n',
        [_with_id(3, _error("QMP input lacks member 'execute'"))],
    ),
    Observed(
        "unknown member",
        b'{"foo":1}\n',
        [_error("QMP input member 'foo' is unexpected")],
    ),
    Observed(
        "unknown member keeps id",
        b'{"foo":1,"id":7}\n',
        [_with_id(7, _error("QMP input member 'foo' is unexpected"))],
    ),
    Observed(
        "unknown member beside execute",
        b'{"execute":"query-status","control":{}}\n',
        [_error("QMP input member 'control' is unexpected")],
    ),
    Observed(
        "execute not a string",
        b'{"execute":5}\n',
        [_error("QMP input member 'execute' must be a string")],
    ),
    Observed(
        "type checked before unknown members",
        b'{"foo":1,"execute":5}\n',
        [_error("QMP input member 'execute' must be a string")],
    ),
    Observed(
        "arguments not an object",
        b'{"execute":"query-status","arguments":[1]}\n',
        [_error("QMP input member 'arguments' must be an object")],
    ),
    Observed(
        "arguments null",
        b'{"execute":"query-status","arguments":null}\n',
        [_error("QMP input member 'arguments' must be an object")],
    ),
    Observed(
        "execute and exec-oob",
        b'{"execute":"query-status","exec-oob":"query-status"}\n',
        [_error("QMP input member 'execute' clashes with 'exec-oob'")],
    ),
    Observed(
        "oob on a command without allow-oob",
        b'{"exec-oob":"query-status","id":1}\n',
        [_with_id(1, _error("The command query-status does not support OOB"))],
    ),
    Observed(
        "oob on qmp_capabilities",
        b'{"exec-oob":"qmp_capabilities","id":1}\n',
        [_with_id(1, _error("The command qmp_capabilities does not support OOB"))],
    ),
    Observed(
        "oob on query-commands",
        b'{"exec-oob":"query-commands","id":3}\n',
        [_with_id(3, _error("The command query-commands does not support OOB"))],
    ),
    Observed(
        "oob on an unknown command",
        b'{"exec-oob":"nonexistent","id":2}\n',
        [_with_id(2, NOT_FOUND)],
    ),
    Observed(
        "unknown argument",
        b'{"execute":"query-status","arguments":{"x":1}}\n',
        [_error("Parameter 'x' is unexpected")],
    ),
    Observed(
        "unknown command keeps string id",
        b'{"execute":"nonexistent","id":"abc"}\n',
        [_with_id("abc", NOT_FOUND)],
    ),
    Observed(
        "structured id echoed",
        b'{"execute":"query-status","id":{"a":[1,2]}}\n',
        [{"return": STATUS, "id": {"a": [1, 2]}}],
    ),
    Observed(
        "null id echoed",
        b'{"execute":"query-status","id":null}\n',
        [{"return": STATUS, "id": None}],
    ),
    Observed(
        "second negotiation",
        b'{"execute":"qmp_capabilities"}\n',
        [
            _error(
                "Capabilities negotiation is already complete, command ignored",
                "CommandNotFound",
            )
        ],
    ),
    Observed(
        "two values on one line",
        b'{"execute":"query-status"} {"execute":"nonexistent"}\n',
        [{"return": STATUS}, NOT_FOUND],
    ),
    Observed(
        "no newline between values",
        b'{"execute":"query-status"}{"execute":"query-status","id":2}',
        [{"return": STATUS}, {"return": STATUS, "id": 2}],
    ),
    Observed(
        "value across lines",
        b'{"execute":\n"query-status"\n}\n',
        [{"return": STATUS}],
    ),
    Observed("single quotes", b"{'execute':'query-status'}\n", [{"return": STATUS}]),
    Observed(
        "single-quoted escape",
        b"{'execute':'query-status','id':'it\\'s'}\n",
        [{"return": STATUS, "id": "it's"}],
    ),
    Observed(
        "trailing comma",
        b'{"execute":"query-status",}\n',
        [_parse_error("expecting value")],
    ),
    Observed("bad keyword", b"{bad json}\n", [_parse_error("invalid keyword 'bad'")]),
    Observed(
        "capital keyword",
        b'{"execute":"query-status","id":TRUE}\n',
        [_parse_error("stray 'T'"), _parse_error("expecting value")],
    ),
    Observed(
        "NaN",
        b'{"execute":"query-status","id":NaN}\n',
        [_parse_error("stray 'N'"), _parse_error("expecting value")],
    ),
    Observed(
        "missing colon",
        b'{"execute" "query-status"}\n',
        [_parse_error("missing : in object pair")],
    ),
    Observed(
        "missing comma in object",
        b'{"execute":"query-status" "x"}\n',
        [_parse_error("expected separator in dict")],
    ),
    Observed(
        "missing comma in array",
        b"[1 2]\n",
        [_parse_error("expected separator in list")],
    ),
    Observed("number key", b"{1:2}\n", [_parse_error("key is not a string in object")]),
    Observed("empty value", b'{"a":}\n', [_parse_error("expecting value")]),
    Observed("array trailing comma", b"[1,]\n", [_parse_error("expecting value")]),
    Observed(
        "duplicate key",
        b'{"execute":"query-status","id":1,"id":2}\n',
        [_parse_error("duplicate key")],
    ),
    Observed("stray character", b"@\n", [_parse_error("stray '@'")]),
    Observed(
        "stray character inside a value",
        b'{"a":1@}\n',
        [_parse_error("stray '@'"), _parse_error("expecting value")],
    ),
    Observed("stray closing brace", b"}\n", [_parse_error("expecting value")]),
    Observed(
        "leading zero",
        b'{"a":01}\n',
        [_parse_error("stray '01'"), _parse_error("expecting value")],
    ),
    Observed("bare decimal point", b'{"a":1.}\n', [_parse_error("stray '1.}'")]),
    Observed("lone minus", b"-\n", [_parse_error("stray '-\n'")]),
    Observed(
        "minus before a letter",
        b'{"a":-x}\n',
        [_parse_error("stray '-x'"), _parse_error("expecting value")],
    ),
    Observed("stray UTF-8 character", "é\n".encode(), [_parse_error("stray '\ufffd'")]),
    Observed(
        "UTF-8 character ending a number",
        '{"a":1.é}\n'.encode(),
        [_parse_error("stray '1.\ufffd'"), _parse_error("expecting value")],
    ),
    Observed(
        "bad escape",
        b'{"a":"\\q"}\n',
        [_parse_error("invalid escape sequence in string")],
    ),
    Observed(
        "short unicode escape",
        b'{"a":"\\u12"}\n',
        [_parse_error('\\u12" is not a valid Unicode character')],
    ),
    Observed(
        "lone surrogate",
        b'{"execute":"query-status","id":"\\ud800"}\n',
        [_parse_error("\\ud800 is not a valid Unicode character")],
    ),
    Observed(
        "integer beyond 64 bits becomes a double",
        b'{"execute":"query-status","id":123456789012345678901234567890}\n',
        [{"return": STATUS, "id": 1.2345678901234568e29}],
    ),
    Observed(
        "largest uint64 stays an integer",
        b'{"execute":"query-status","id":18446744073709551615}\n',
        [{"return": STATUS, "id": 18446744073709551615}],
    ),
    Observed(
        "NUL escape accepted",
        b'{"execute":"query-status","id":"\\u0000"}\n',
        [{"return": STATUS, "id": "\x00"}],
    ),
    Observed(
        "raw tab in string",
        b'{"execute":"query-status","id":"a\tb"}\n',
        [_parse_error("stray '\"a\t'"), _parse_error("expecting value")],
    ),
    Observed(
        "invalid UTF-8",
        b'{"execute":"query-status","id":"a\xc3b"}\n',
        [_parse_error("invalid UTF-8 sequence in string")],
    ),
    Observed(
        "impossible UTF-8 byte",
        b'{"a":"\xff"}\n',
        [_parse_error("stray '\"\ufffd'"), _parse_error("expecting value")],
    ),
    Observed(
        "nesting 1024 deep is accepted",
        b"[" * 1024 + b"]" * 1024 + b"\n",
        [_error("QMP input must be a JSON object")],
    ),
    Observed(
        "nesting 1025 deep is refused",
        b"[" * 1025 + b"]" * 1025 + b"\n",
        [_error("JSON nesting depth limit exceeded")]
        + [_parse_error("expecting value")] * 1025,
    ),
]

OBSERVED_BEFORE_NEGOTIATION: list[Observed] = [
    Observed(
        "capabilities not a list",
        b'{"execute":"qmp_capabilities","arguments":{"enable":"oob"}}\n',
        [_error("Invalid parameter type for 'enable', expected: array")],
    ),
    Observed(
        "capability not a string",
        b'{"execute":"qmp_capabilities","arguments":{"enable":["oob",1]}}\n',
        [_error("Invalid parameter type for 'enable[1]', expected: string")],
    ),
    Observed(
        "unknown qmp_capabilities argument",
        b'{"execute":"qmp_capabilities","arguments":{"x":1}}\n',
        [_error("Parameter 'x' is unexpected")],
    ),
    Observed(
        "command before negotiation",
        b'{"execute":"query-status"}\n',
        [
            _error(
                "Expecting capabilities negotiation with 'qmp_capabilities'",
                "CommandNotFound",
            )
        ],
    ),
    Observed(
        "command before negotiation keeps id",
        b'{"execute":"query-status","id":5}\n',
        [
            _with_id(
                5,
                _error(
                    "Expecting capabilities negotiation with 'qmp_capabilities'",
                    "CommandNotFound",
                ),
            )
        ],
    ),
    Observed(
        "exec-oob before negotiation",
        b'{"exec-oob":"query-status"}\n',
        [_error("QMP input member 'exec-oob' is unexpected")],
    ),
    Observed(
        "unknown capability",
        b'{"execute":"qmp_capabilities","arguments":{"enable":["bogus"]}}\n',
        [_error("Parameter 'null' does not accept value 'bogus'")],
    ),
]

OBSERVED_WITHOUT_OOB: list[Observed] = [
    Observed(
        "exec-oob when oob was not enabled",
        b'{"exec-oob":"migrate-pause","id":1}\n',
        [_with_id(1, _error("QMP input member 'exec-oob' is unexpected"))],
    ),
]

SYNC_REQUEST = b'{"execute":"query-status","id":"__sync__"}\n'


class RawQMP:
    """A bare socket speaking QMP line by line, for checking the exact wire."""

    def __init__(self, address: Address, timeout: float = 10.0) -> None:
        self.sock = open_socket(address, timeout)
        self._buffer = b""
        self.greeting = self.read()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self) -> dict[str, object]:
        while b"\n" not in self._buffer:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed")
            self._buffer += data
        line, self._buffer = self._buffer.split(b"\n", 1)
        message = json.loads(line)
        assert isinstance(message, dict)
        return message

    def negotiate(self, oob: bool = True) -> None:
        arguments = {"enable": ["oob"]} if oob else {}
        self.send(
            json.dumps({"execute": "qmp_capabilities", "arguments": arguments}).encode()
        )
        assert self.read() == {"return": {}}

    def exchange(self, data: bytes) -> list[dict[str, object]]:
        """Send `data`, then a marker command; the replies that came before it."""
        self.send(data)
        self.send(SYNC_REQUEST)
        replies: list[dict[str, object]] = []
        while True:
            message = self.read()
            if message.get("id") == "__sync__":
                return replies
            if "event" not in message:
                replies.append(message)


class FixtureDispatcher:
    """A small dispatcher for tests: echo, failures, slow and oob commands, events."""

    def __init__(self) -> None:
        self.server: QMPServer | None = None
        self.calls = 0

    def command_names(self) -> Sequence[str]:
        return [
            "query-status",
            "echo",
            "fail",
            "sleep",
            "ping",
            "emit",
            "crash",
            "migrate-pause",
        ]

    def oob_command_names(self) -> Collection[str]:
        return {"ping", "migrate-pause"}

    async def dispatch(self, name: str, arguments: dict[str, object]) -> object:
        self.calls += 1
        if name == "query-status":
            for key in arguments:
                raise GenericError(f"Parameter '{key}' is unexpected")
            return dict(STATUS)
        if name == "echo":
            return arguments
        if name == "fail":
            error_class = str(arguments.get("class", "GenericError"))
            desc = str(arguments.get("desc", "failed"))
            if error_class == "DeviceNotFound":
                raise DeviceNotFound(desc)
            if error_class == "CommandNotFound":
                raise CommandNotFound(desc)
            raise QMPCommandError(desc, error_class)
        if name == "sleep":
            seconds = arguments.get("seconds", 0.1)
            assert isinstance(seconds, (int, float))
            await asyncio.sleep(seconds)
            return {"slept": seconds}
        if name == "ping":
            return {"pong": True}
        if name == "emit":
            assert self.server is not None
            count = arguments.get("count", 1)
            assert isinstance(count, int)
            for index in range(count):
                self.server.emit(str(arguments.get("event", "TEST")), {"index": index})
            return {}
        if name == "migrate-pause":
            raise GenericError(
                "migrate-pause is currently only supported during postcopy-active state"
            )
        if name == "crash":
            raise RuntimeError("handler bug")
        raise CommandNotFound(f"The command {name} has not been found")


def wait_for_path(path: str, timeout: float = 10.0) -> None:
    """Wait until a unix socket exists (QEMU creates it after starting)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.socket(socket.AF_UNIX) as probe:
                probe.connect(path)
            return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"{path} did not appear")


class ServerThread:
    """A QMPServer running on its own event loop in a thread, so blocking clients
    (and asyncio clients on another loop) can talk to it from the test."""

    def __init__(self, address: Address, **options: object) -> None:
        self.dispatcher = FixtureDispatcher()
        self._requested = address
        self._options = options
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.address: Address = address
        self.server: QMPServer | None = None

    def __enter__(self) -> ServerThread:
        self._thread.start()
        self.address = self.call(self._start())
        return self

    async def _start(self) -> Address:
        server = QMPServer(self.dispatcher, **self._options)  # type: ignore[arg-type]
        self.dispatcher.server = server
        self.server = server
        return await server.listen(self._requested)

    def call(self, coroutine: Coroutine[object, object, T]) -> T:
        """Run a coroutine on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    def emit(self, name: str, data: dict[str, object] | None = None) -> None:
        async def emit() -> None:
            assert self.server is not None
            self.server.emit(name, data)

        self.call(emit())

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            self.call(self.server.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()
