"""A server built on a generated package sends no reply to a ``'success-response':
false`` command that succeeded (the guest agent's ``guest-shutdown``, ``guest-suspend-*``),
as qemu-ga does; the clients do not wait for one (tests/runtime/test_qga_client.py).
Its errors are replied to as any command's, and the commands after it are served."""

from __future__ import annotations

import asyncio
import json

from qapigen_qga import commands
from qapigen_runtime.bindings.dispatch import SchemaDispatcher
from qapigen_runtime.qmp.errors import GenericError
from qapigen_runtime.qmp.protocol import NO_REPLY
from qapigen_runtime.qmp.server import QMPServer


class Agent(commands.CommandHandlerBase):
    def __init__(self) -> None:
        self.shutdowns: list[str | None] = []

    async def guest_ping(self) -> None:
        return None

    async def guest_shutdown(self, *, mode: str | None = None) -> None:
        if mode not in (None, "powerdown", "halt", "reboot"):
            raise GenericError("Invalid parameter 'mode'")
        self.shutdowns.append(mode)


def test_the_tables_name_the_commands_without_a_reply() -> None:
    assert "guest-shutdown" in commands.NO_REPLY_COMMANDS
    assert "guest-suspend-disk" in commands.NO_REPLY_COMMANDS
    assert "guest-ping" not in commands.NO_REPLY_COMMANDS


def test_the_dispatcher_returns_no_reply_only_on_success() -> None:
    agent = Agent()
    dispatcher = commands.CommandDispatcher(agent)
    assert isinstance(dispatcher, SchemaDispatcher)

    async def run() -> None:
        assert await dispatcher.dispatch("guest-shutdown", {"mode": "halt"}) is NO_REPLY
        assert await dispatcher.dispatch("guest-ping", {}) == {}

    asyncio.run(run())
    assert agent.shutdowns == ["halt"]


def test_the_server_sends_nothing_for_a_successful_shutdown() -> None:
    agent = Agent()

    async def scenario() -> list[dict[str, object]]:
        server = QMPServer(commands.CommandDispatcher(agent))
        address = await server.listen(("127.0.0.1", 0))
        assert isinstance(address, tuple)
        reader, writer = await asyncio.open_connection(*address)
        try:
            await reader.readline()  # the greeting
            requests = [
                {"execute": "qmp_capabilities", "id": 0},
                {"execute": "guest-shutdown", "id": 1},
                {"execute": "guest-shutdown", "arguments": {"mode": "x"}, "id": 2},
                {"execute": "guest-shutdown", "arguments": {"mode": "reboot"}, "id": 3},
                {"execute": "guest-ping", "id": 4},
            ]
            writer.write(b"".join(json.dumps(r).encode() + b"\n" for r in requests))
            await writer.drain()
            replies: list[dict[str, object]] = []
            while not replies or replies[-1].get("id") != 4:
                line = await asyncio.wait_for(reader.readline(), 10)
                replies.append(json.loads(line))
            return replies
        finally:
            writer.close()
            await server.close()

    replies = asyncio.run(scenario())
    assert replies == [
        {"return": {}, "id": 0},
        {
            "error": {"class": "GenericError", "desc": "Invalid parameter 'mode'"},
            "id": 2,
        },
        {"return": {}, "id": 4},
    ]
    assert agent.shutdowns == [None, "reboot"]
