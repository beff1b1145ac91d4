"""The QMP server receives the file descriptors clients pass with SCM_RIGHTS.

A pipe stands in for each descriptor passed: once the test has closed its own copy of
the write end, the read end tells whether the server still holds it (a read would
block) or closed it (end of file). The server runs in the test's process, so
/proc/self/fd also shows that nothing is left open at the end.

The rules themselves are QEMU 7.2's; `test_fd_rules_match_qemu` observes them on a
real QEMU and on QMPServer with the same probe.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Sequence
from pathlib import Path

import pytest

from qapigen_runtime.qmp import (
    CommandNotFound,
    GenericError,
    QMPClient,
    QMPServer,
    SyncQMPClient,
)
from qapigen_runtime.qmp.passed_fds import MAX_FDS_PER_MESSAGE, take_passed_fd
from qapigen_runtime.qmp.server import QMPSession
from qapigen_testing.qemu_fixtures import (
    QemuLauncher,
)
from qapigen_testing.qmp_fixtures import STATUS, RawQMP

pytestmark = pytest.mark.timeout(60)

NO_FD = "No file descriptor supplied via SCM_RIGHTS"
DIGIT_NAME = "Parameter 'fdname' expects a name not starting with a digit"


def _fdname(arguments: dict[str, object]) -> str:
    fdname = arguments.get("fdname")
    if not isinstance(fdname, str):
        raise GenericError("Parameter 'fdname' is missing")
    return fdname


class FdDispatcher:
    """getfd and closefd answered as QEMU 7.2 does, query-status, and an oob command
    that reports whether a descriptor came with it."""

    def __init__(self) -> None:
        self.named: dict[str, int] = {}

    def command_names(self) -> Sequence[str]:
        return ["getfd", "closefd", "query-status", "take-fd-oob"]

    def oob_command_names(self) -> Collection[str]:
        return {"take-fd-oob"}

    async def dispatch(self, name: str, arguments: dict[str, object]) -> object:
        if name == "getfd":
            fdname = _fdname(arguments)
            fd = take_passed_fd()
            if fd is None:
                raise GenericError(NO_FD)
            if fdname[:1].isdigit():
                os.close(fd)
                raise GenericError(DIGIT_NAME)
            self._keep(fdname, fd)
            return {}
        if name == "closefd":
            fdname = _fdname(arguments)
            kept = self.named.pop(fdname, None)
            if kept is None:
                raise GenericError(f"File descriptor named '{fdname}' not found")
            os.close(kept)
            return {}
        if name == "query-status":
            return dict(STATUS)
        if name == "take-fd-oob":
            fd = take_passed_fd()
            if fd is not None:
                self._keep("oob", fd)
            return {"fd": fd is not None}
        raise CommandNotFound(f"The command {name} has not been found")

    def _keep(self, fdname: str, fd: int) -> None:
        old = self.named.pop(fdname, None)
        if old is not None:
            os.close(old)  # as QEMU: getfd of a known name replaces its descriptor
        self.named[fdname] = fd

    def close_all(self) -> None:
        for fd in self.named.values():
            os.close(fd)
        self.named.clear()


class PassedPipe:
    """A pipe whose write end the test passes along, then drops its own copy of."""

    def __init__(self) -> None:
        self.read_end, self.write_end = os.pipe()
        os.set_blocking(self.read_end, False)
        self._write_end_open = True

    def drop_write_end(self) -> None:
        if self._write_end_open:
            os.close(self.write_end)
            self._write_end_open = False

    def held_elsewhere(self) -> bool:
        """Whether a copy of the write end is still open (the test dropped its own)."""
        assert not self._write_end_open
        try:
            data = os.read(self.read_end, 1)
        except BlockingIOError:
            return True
        assert data == b"", "nobody writes into these pipes"
        return False

    def close(self) -> None:
        self.drop_write_end()
        os.close(self.read_end)


@pytest.fixture
def pipes() -> Iterator[Callable[[int], list[PassedPipe]]]:
    """Makes pipes; all are closed when the test ends."""
    made: list[PassedPipe] = []

    def make(count: int) -> list[PassedPipe]:
        new = [PassedPipe() for _ in range(count)]
        made.extend(new)
        return new

    yield make
    for pipe in made:
        pipe.close()


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    """A short directory for sockets (unix socket paths are limited to 107 bytes)."""
    directory = Path(tempfile.mkdtemp(prefix="qfds-"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def open_fd_count() -> int:
    """How many descriptors this process has open."""
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("/proc/self/fd is not available on this system")
    return len(os.listdir("/proc/self/fd"))


@contextlib.asynccontextmanager
async def fd_server(directory: Path) -> AsyncIterator[tuple[QMPServer, FdDispatcher]]:
    dispatcher = FdDispatcher()
    server = QMPServer(dispatcher)
    await server.listen(str(directory / "qmp.sock"))
    try:
        yield server, dispatcher
    finally:
        await server.close()
        dispatcher.close_all()


def address(directory: Path) -> str:
    return str(directory / "qmp.sock")


async def eventually(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.01)


def only_session(server: QMPServer) -> QMPSession:
    (session,) = server.sessions
    return session


def assert_same_pipe(fd: int, pipe: PassedPipe) -> None:
    """`fd` (the server's) writes into `pipe`."""
    os.write(fd, b"!")
    assert os.read(pipe.read_end, 1) == b"!"


# -- receiving ------------------------------------------------------------------


def test_async_client_passes_a_descriptor_to_the_handler(
    sock_dir: Path, pipes: Callable[[int], list[PassedPipe]]
) -> None:
    (pipe,) = pipes(1)
    os.set_blocking(pipe.write_end, False)

    async def scenario() -> None:
        async with fd_server(sock_dir) as (_, dispatcher), QMPClient() as client:
            await client.connect(address(sock_dir))
            assert (
                await client.execute("getfd", {"fdname": "a"}, fds=[pipe.write_end])
                == {}
            )
            received = dispatcher.named["a"]
            assert received != pipe.write_end
            assert_same_pipe(received, pipe)
            # As QEMU: received descriptors are blocking (the flag is the open
            # file's, so the sender's copy changes too), and not inherited here.
            assert os.get_blocking(received) and os.get_blocking(pipe.write_end)
            assert not os.get_inheritable(received)

    asyncio.run(scenario())


def test_sync_client_passes_a_descriptor_to_the_handler(
    sock_dir: Path, pipes: Callable[[int], list[PassedPipe]]
) -> None:
    (pipe,) = pipes(1)

    def client_side() -> None:
        with SyncQMPClient() as client:
            client.connect(address(sock_dir))
            assert client.execute("getfd", {"fdname": "s"}, fds=[pipe.write_end]) == {}
            pipe.drop_write_end()
            assert pipe.held_elsewhere()
            assert client.execute("closefd", {"fdname": "s"}) == {}
            assert not pipe.held_elsewhere()

    async def scenario() -> None:
        async with fd_server(sock_dir):
            await asyncio.to_thread(client_side)

    asyncio.run(scenario())


def test_getfd_without_a_descriptor_gets_qemus_error(sock_dir: Path) -> None:
    async def scenario() -> None:
        async with fd_server(sock_dir) as (server, _):
            tcp = await server.listen(("127.0.0.1", 0))
            for where in (address(sock_dir), tcp):
                async with QMPClient() as client:
                    await client.connect(where)
                    with pytest.raises(GenericError) as error:
                        await client.execute("getfd", {"fdname": "x"})
                    assert error.value.desc == NO_FD

    asyncio.run(scenario())


# -- what happens to descriptors nobody takes -------------------------------------


def test_descriptors_nobody_takes_are_closed(
    sock_dir: Path, pipes: Callable[[int], list[PassedPipe]]
) -> None:
    first, second, taken, spare, left = pipes(5)

    async def send(client: QMPClient, command: str, pipe: PassedPipe) -> None:
        arguments = {"fdname": "t"} if command == "getfd" else None
        await client.execute(command, arguments, fds=[pipe.write_end])
        pipe.drop_write_end()

    async def scenario() -> None:
        async with fd_server(sock_dir) as (server, dispatcher):
            # What must remain: all but the write ends the test drops on the way.
            expected = open_fd_count() - 5
            async with QMPClient() as client:
                await client.connect(address(sock_dir))
                session = only_session(server)
                # Not taken: kept for a later command, as QEMU keeps it...
                await send(client, "query-status", first)
                assert first.held_elsewhere() and session.passed_fds.held == 1
                # ...until the descriptors of another message replace it.
                await send(client, "query-status", second)
                assert not first.held_elsewhere() and second.held_elsewhere()
                # A command takes the first of a message; the others are closed.
                await client.execute(
                    "getfd",
                    {"fdname": "t"},
                    fds=[taken.write_end, spare.write_end],
                )
                taken.drop_write_end()
                spare.drop_write_end()
                assert not second.held_elsewhere()
                assert taken.held_elsewhere() and not spare.held_elsewhere()
                assert_same_pipe(dispatcher.named["t"], taken)
                await client.execute("closefd", {"fdname": "t"})
                assert not taken.held_elsewhere()
                await send(client, "query-status", left)
                assert left.held_elsewhere()
            # Disconnecting closes what the connection still held.
            await eventually(lambda: not server.sessions, "the session ends")
            assert not left.held_elsewhere()
            assert open_fd_count() == expected

    asyncio.run(scenario())


def test_many_descriptors_in_one_message(
    sock_dir: Path, pipes: Callable[[int], list[PassedPipe]]
) -> None:
    passed = pipes(MAX_FDS_PER_MESSAGE + 4)
    held: list[int] = []

    def client_side() -> None:
        with SyncQMPClient() as client:
            client.connect(address(sock_dir))
            client.execute("query-status", fds=[pipe.write_end for pipe in passed])
            for pipe in passed:
                pipe.drop_write_end()
            held.extend(i for i, pipe in enumerate(passed) if pipe.held_elsewhere())
            # getfd without descriptors takes the first of those kept (QEMU's rule).
            assert client.execute("getfd", {"fdname": "many"}) == {}
            assert [i for i, p in enumerate(passed) if p.held_elsewhere()] == [0]
            assert client.execute("closefd", {"fdname": "many"}) == {}
            assert not any(pipe.held_elsewhere() for pipe in passed)

    async def scenario() -> None:
        async with fd_server(sock_dir) as (server, _):
            expected = open_fd_count() - len(passed)  # the client drops its copies
            await asyncio.to_thread(client_side)
            await eventually(lambda: not server.sessions, "the session ends")
            assert open_fd_count() == expected

    asyncio.run(scenario())
    # As QEMU: the first 16 are received, the kernel closes the rest.
    assert held == list(range(MAX_FDS_PER_MESSAGE))


# -- which command the descriptors come with --------------------------------------


def test_pipelined_requests_get_their_own_descriptors(
    sock_dir: Path, pipes: Callable[[int], list[PassedPipe]]
) -> None:
    passed = pipes(6)

    async def scenario() -> None:
        async with fd_server(sock_dir) as (_, dispatcher), QMPClient() as client:
            await client.connect(address(sock_dir))
            requests = []
            for index, pipe in enumerate(passed):
                requests += [client.execute("query-status") for _ in range(3)]
                requests.append(
                    client.execute(
                        "getfd", {"fdname": f"p{index}"}, fds=[pipe.write_end]
                    )
                )
            await asyncio.gather(*requests)
            for index, pipe in enumerate(passed):
                assert_same_pipe(dispatcher.named[f"p{index}"], pipe)

    asyncio.run(scenario())


def test_descriptors_go_to_the_first_request_of_their_message(
    sock_dir: Path, pipes: Callable[[int], list[PassedPipe]]
) -> None:
    one, split = pipes(2)
    two_getfds = (
        b'{"execute":"getfd","arguments":{"fdname":"first"}}\n'
        b'{"execute":"getfd","arguments":{"fdname":"second"}}\n'
    )

    def client_side() -> None:
        raw = RawQMP(address(sock_dir))
        try:
            raw.negotiate()
            socket.send_fds(raw.sock, [two_getfds], [one.write_end])
            assert raw.read() == {"return": {}}
            assert raw.read() == {"error": {"class": "GenericError", "desc": NO_FD}}
            # Descriptors sent with the end of a request (the start went before).
            raw.send(b'{"execute":"getfd",')
            time.sleep(0.1)
            socket.send_fds(
                raw.sock, [b'"arguments":{"fdname":"split"}}\n'], [split.write_end]
            )
            assert raw.read() == {"return": {}}
        finally:
            raw.close()

    async def scenario() -> None:
        async with fd_server(sock_dir) as (_, dispatcher):
            await asyncio.to_thread(client_side)
            assert_same_pipe(dispatcher.named["first"], one)
            assert_same_pipe(dispatcher.named["split"], split)

    asyncio.run(scenario())


def test_out_of_band_command_gets_its_descriptor(
    sock_dir: Path, pipes: Callable[[int], list[PassedPipe]]
) -> None:
    (pipe,) = pipes(1)

    async def scenario() -> None:
        async with fd_server(sock_dir) as (_, dispatcher), QMPClient() as client:
            await client.connect(address(sock_dir))
            taken = await client.execute("take-fd-oob", oob=True, fds=[pipe.write_end])
            assert taken == {"fd": True}
            assert_same_pipe(dispatcher.named["oob"], pipe)
            assert await client.execute("take-fd-oob", oob=True) == {"fd": False}

    asyncio.run(scenario())


# -- many clients -------------------------------------------------------------------


def test_server_keeps_serving_other_clients(
    sock_dir: Path, pipes: Callable[[int], list[PassedPipe]]
) -> None:
    clients, rounds = 5, 10
    passed = [pipes(rounds) for _ in range(clients)]
    abandoned = pipes(3)
    failures: list[BaseException] = []

    def client_side(index: int) -> None:
        try:
            with SyncQMPClient() as client:
                client.connect(address(sock_dir))
                for round_, pipe in enumerate(passed[index]):
                    fdname = f"c{index}-{round_}"
                    assert (
                        client.execute(
                            "getfd", {"fdname": fdname}, fds=[pipe.write_end]
                        )
                        == {}
                    )
                    assert client.execute("query-status") == STATUS
        except BaseException as error:  # reported by the main thread
            failures.append(error)

    def abandoning_client() -> None:
        # Passes descriptors nobody takes, then goes away without a word.
        raw = RawQMP(address(sock_dir))
        raw.negotiate()
        socket.send_fds(
            raw.sock,
            [b'{"execute":"query-status"}\n'],
            [pipe.write_end for pipe in abandoned],
        )
        raw.read()
        raw.close()

    async def scenario() -> None:
        async with fd_server(sock_dir) as (server, dispatcher):
            # The server keeps one descriptor per getfd; the abandoned ones go.
            expected = open_fd_count() + clients * rounds - len(abandoned)
            threads = [
                threading.Thread(target=client_side, args=(index,))
                for index in range(clients)
            ]
            for thread in threads:
                thread.start()
            await asyncio.to_thread(abandoning_client)
            for thread in threads:
                await asyncio.to_thread(thread.join, 30)
            assert not failures, failures
            await eventually(lambda: not server.sessions, "every session ends")
            for pipe in abandoned:
                pipe.drop_write_end()
                assert not pipe.held_elsewhere()
            for index in range(clients):
                for round_, pipe in enumerate(passed[index]):
                    assert_same_pipe(dispatcher.named[f"c{index}-{round_}"], pipe)
            assert open_fd_count() == expected

    asyncio.run(scenario())


# -- the facts, on a real QEMU ------------------------------------------------------


def observe_fd_rules(where: str) -> dict[str, object]:
    """What a QMP server does with passed descriptors, probed over raw sockets."""
    facts: dict[str, object] = {}
    made: list[PassedPipe] = []

    def new_pipes(count: int) -> list[PassedPipe]:
        made.extend(PassedPipe() for _ in range(count))
        return made[-count:]

    def send(raw: RawQMP, request: bytes, passed: list[PassedPipe]) -> object:
        socket.send_fds(raw.sock, [request], [pipe.write_end for pipe in passed])
        for pipe in passed:
            pipe.drop_write_end()
        return raw.read()

    def held(passed: list[PassedPipe]) -> list[bool]:
        return [pipe.held_elsewhere() for pipe in passed]

    getfd = b'{"execute":"getfd","arguments":{"fdname":"f"}}\n'
    closefd = b'{"execute":"closefd","arguments":{"fdname":"f"}}\n'
    status = b'{"execute":"query-status"}\n'
    try:
        raw = RawQMP(where)
        try:
            raw.negotiate()
            facts["getfd without"] = raw.exchange(getfd)
            two = new_pipes(2)
            facts["getfd with two"] = [send(raw, getfd, two), held(two)]
            raw.exchange(closefd)
            kept = new_pipes(1)
            send(raw, status, kept)
            facts["kept for a later getfd"] = [held(kept), raw.exchange(getfd)]
            raw.exchange(closefd)
            replaced = new_pipes(2)
            send(raw, status, replaced[:1])
            send(raw, status, replaced[1:])
            facts["replaced by the next message"] = held(replaced)
            many = new_pipes(20)
            send(raw, getfd, many)
            facts["20 with getfd: held"] = [
                i for i, p in enumerate(many) if held([p])[0]
            ]
            raw.exchange(closefd)
            nonblocking = new_pipes(1)[0]
            os.set_blocking(nonblocking.write_end, False)
            socket.send_fds(raw.sock, [getfd], [nonblocking.write_end])
            raw.read()
            facts["made blocking"] = os.get_blocking(nonblocking.write_end)
            raw.exchange(closefd)
            bad = new_pipes(1)
            facts["bad JSON"] = [send(raw, b'{"execute":}\n', bad), raw.exchange(getfd)]
            raw.exchange(closefd)
            one = new_pipes(1)
            first = send(raw, getfd + getfd, one)
            facts["two getfds, one message"] = [first, raw.read(), held(one)]
            raw.exchange(closefd)
            split = new_pipes(1)
            raw.send(getfd[:20])
            time.sleep(0.1)  # the start of the request is read before the rest
            facts["sent with the end of getfd"] = send(raw, getfd[20:], split)
            raw.exchange(closefd)
            left = new_pipes(1)
            send(raw, status, left)
        finally:
            raw.close()
        deadline = time.monotonic() + 5
        while left[0].held_elsewhere() and time.monotonic() < deadline:
            time.sleep(0.01)
        facts["closed at disconnect"] = not left[0].held_elsewhere()
    finally:
        for pipe in made:
            pipe.close()
    return facts


EXPECTED_FD_RULES: dict[str, object] = {
    "getfd without": [{"error": {"class": "GenericError", "desc": NO_FD}}],
    "getfd with two": [{"return": {}}, [True, False]],
    "kept for a later getfd": [[True], [{"return": {}}]],
    "replaced by the next message": [False, True],
    "20 with getfd: held": [0],
    "made blocking": True,
    "bad JSON": [
        {
            "error": {
                "class": "GenericError",
                "desc": "JSON parse error, expecting value",
            }
        },
        [{"return": {}}],
    ],
    "two getfds, one message": [
        {"return": {}},
        {"error": {"class": "GenericError", "desc": NO_FD}},
        [True],
    ],
    "sent with the end of getfd": {"return": {}},
    "closed at disconnect": True,
}


@pytest.mark.qemu
def test_fd_rules_match_qemu(qemu_launcher: QemuLauncher, sock_dir: Path) -> None:
    qemu = qemu_launcher.start("fds")
    assert observe_fd_rules(qemu.qmp_address) == EXPECTED_FD_RULES

    async def scenario() -> dict[str, object]:
        async with fd_server(sock_dir):
            return await asyncio.to_thread(observe_fd_rules, address(sock_dir))

    assert asyncio.run(scenario()) == EXPECTED_FD_RULES
