"""The shell's loops: interactive (a terminal) and scripted (anything else).

Interactive: a prompt with history (kept in ~/.qapigen_shell_history, or
$QAPIGEN_SHELL_HISTORY) and Tab completion, replies pretty-printed, events printed as
they arrive, errors shown and the session goes on. Scripted (stdin not a terminal):
one command per line, each reply printed as one line of JSON on stdout, events as
JSON lines on stderr, and the first error (a line that cannot be read, arguments
the schema refuses, an error reply) ends the run with exit status 1, reported as
`<stdin>:LINE[:COL]: message`.

Lines: `COMMAND [KEY=VALUE ...]` or a JSON request (see command_line), `help`,
`help COMMAND`, `quit`; blank lines and lines starting with `#` are skipped.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from qapigen_runtime.qmp.errors import QMPCommandError, QMPError
from qapigen_runtime.qmp.events import QMPEvent

from ..source import QAPIError
from .catalog import Catalog
from .command_line import ShellError, parse_line
from .connection import Connection
from .validate import check_request

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130  # as a shell reports SIGINT
PROMPT = "(QMP) "
HISTORY_LENGTH = 1000


def event_json(event: QMPEvent) -> dict[str, object]:
    """An event as QEMU sent it (name, data, timestamp)."""
    return {
        "event": event.name,
        "data": event.data,
        "timestamp": {"seconds": event.seconds, "microseconds": event.microseconds},
    }


class Shell:
    """Runs lines against a connected server, with the server's catalog."""

    def __init__(
        self, connection: Connection, catalog: Catalog, out: TextIO, err: TextIO
    ) -> None:
        self.connection = connection
        self.catalog = catalog
        self.out = out
        self.err = err
        self.command = ""  # the last command sent, for messages

    def help_text(self, words: list[str]) -> str:
        if not words:
            names = self.catalog.command_names()
            return (
                f"{len(names)} commands (Tab completes them and their arguments):\n"
                + "\n".join(names)
                + "\n\nhelp COMMAND: its arguments and documentation; quit: leave"
            )
        name = words[0]
        if name not in self.catalog.commands:
            raise ShellError(f"unknown command '{name}'")
        return self.catalog.help(name)

    def run_line(self, line: str) -> object:
        """What `line` gives: the reply of the command it sends (`command` names
        it), or help text (a HelpText); ShellError or QMPError when it fails.
        NOTHING for a blank line or a comment."""
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            return NOTHING
        words = stripped.split()
        if words[0] == "help":
            return HelpText(self.help_text(words[1:]))
        request = parse_line(line, self.catalog)
        self.command = request.command
        check_request(request, self.catalog)
        return self.connection.execute(request.command, request.arguments)


class HelpText(str):
    """Text to print as it is, not as JSON."""


NOTHING = object()
"""What a line without a command gives (a reply may be null: `qom-get`)."""


def run_script(shell: Shell, lines: Iterable[str], where: str = "<stdin>") -> int:
    """The scripted loop (see the module); its exit status."""
    for number, line in enumerate(lines, 1):
        if line.strip() in ("quit", "exit"):
            break
        try:
            result = shell.run_line(line)
        except ShellError as error:
            print(error.located(f"{where}:{number}"), file=shell.err)
            return EXIT_ERROR
        except QMPCommandError as error:
            print(f"{where}:{number}: {shell.command}: {error}", file=shell.err)
            return EXIT_ERROR
        except QMPError as error:  # the connection failed
            print(f"{where}:{number}: connection lost: {error}", file=shell.err)
            return EXIT_ERROR
        if result is NOTHING:
            continue
        if isinstance(result, HelpText):
            print(result, file=shell.out)
        else:
            print(json.dumps(result), file=shell.out)
        shell.out.flush()
    return EXIT_OK


def history_path() -> Path:
    explicit = os.environ.get("QAPIGEN_SHELL_HISTORY")
    return Path(explicit) if explicit else Path.home() / ".qapigen_shell_history"


def run_interactive(shell: Shell, banner: str) -> int:
    """The interactive loop (see the module); 0 when the user leaves."""
    import readline

    from .complete import Completer

    readline.set_completer(Completer(shell.catalog))
    readline.set_completer_delims(" \t\n")
    readline.parse_and_bind("tab: complete")
    history = history_path()
    try:
        readline.read_history_file(history)
    except OSError:
        pass  # no history yet
    readline.set_history_length(HISTORY_LENGTH)
    print(banner, file=shell.out)
    try:
        while True:
            try:
                line = input(PROMPT)
            except EOFError:
                print(file=shell.out)
                break
            except KeyboardInterrupt:
                print(file=shell.out)
                continue
            if line.strip() in ("quit", "exit"):
                break
            try:
                result = shell.run_line(line)
            except ShellError as error:
                print(error.located("error"), file=shell.err)
                continue
            except QMPCommandError as error:
                print(f"error: {error}", file=shell.err)
                continue
            except KeyboardInterrupt:
                print("\ninterrupted: the command may still run", file=shell.err)
                continue
            except QMPError as error:  # the connection failed
                print(f"connection lost: {error}", file=shell.err)
                return EXIT_ERROR
            if isinstance(result, HelpText):
                print(result, file=shell.out)
            elif result is not NOTHING:
                print(json.dumps(result, indent=2), file=shell.out)
    finally:
        try:
            readline.write_history_file(history)
        except OSError as error:
            print(f"history not saved: {history}: {error.strerror}", file=shell.err)
    return EXIT_OK


def show_event_interactive(event: QMPEvent) -> None:
    """Print an event above the prompt, then the prompt and what was typed again."""
    import readline

    text = json.dumps(event_json(event), indent=2)
    sys.stdout.write(f"\r{text}\n")
    sys.stdout.flush()
    readline.redisplay()


def show_event_scripted(event: QMPEvent) -> None:
    print(json.dumps(event_json(event)), file=sys.stderr, flush=True)


GUEST_AGENT_PACKAGE = "qapigen_qga"
"""The package of the guest agent's schema the shell uses without --package."""


def describe_guest_agent(
    connection: Connection, address_text: str, package: str | None
) -> tuple[Catalog, str]:
    """qemu-ga cannot describe itself: its catalog is the package's (QEMU 7.2's
    guest-agent schema by default), its version from `guest-info`."""
    from qapigen_runtime.qmp.address import describe, parse_address

    address = parse_address(address_text)
    catalog = Catalog.from_package(package or GUEST_AGENT_PACKAGE)
    connection.connect(address, timeout=10.0)
    banner = f"Connected to the guest agent at {describe(address)}"
    info = connection.execute("guest-info", None)
    if isinstance(info, dict) and isinstance(info.get("version"), str):
        banner += f": qemu-ga {info['version']}"
    banner += (
        f", {len(catalog.commands)} commands. help, help COMMAND, quit;"
        " Tab completes commands and arguments."
    )
    return catalog, banner


def connect_and_describe(
    connection: Connection, address_text: str, package: str | None
) -> tuple[Catalog, str]:
    """The catalog of the server (its introspection; a package's when given and the
    server has none, the package's doc comments either way) and a banner line."""
    from qapigen_runtime.qmp.address import describe, parse_address

    address = parse_address(address_text)
    docs_from = Catalog.from_package(package) if package else None
    connection.connect(address, timeout=10.0)
    try:
        answer = connection.execute("query-qmp-schema", None)
    except QMPCommandError:
        if docs_from is None:
            raise ShellError(
                f"{describe(address)} does not answer query-qmp-schema: name the"
                " generated package of its schema with --package"
            ) from None
        catalog = docs_from
    else:
        catalog = Catalog.from_introspection(
            answer,
            f"query-qmp-schema of {describe(address)}",
            docs_from.docs if docs_from else None,
        )
    banner = f"Connected to {describe(address)}"
    try:
        version = connection.execute("query-version", None)
    except QMPError:
        version = None
    from ..from_introspection.source import version_text

    shown = version_text(version)
    if shown:
        banner += f": QEMU {shown}"
    banner += (
        f", {len(catalog.commands)} commands. help, help COMMAND, quit;"
        " Tab completes commands and arguments."
    )
    return catalog, banner


def main(
    address: str,
    package: str | None,
    guest_agent: bool = False,
    interactive: bool | None = None,
) -> int:
    """`qapigen shell`: connect, load the catalog, run the loop; the exit status.
    Errors before the loop are reported on stderr (exit 1)."""
    if interactive is None:
        interactive = sys.stdin.isatty()
    on_event = show_event_interactive if interactive else show_event_scripted
    connection = Connection(on_event, guest_agent)
    describe = describe_guest_agent if guest_agent else connect_and_describe
    try:
        try:
            catalog, banner = describe(connection, address, package)
        except (QMPError, QAPIError, ShellError, ValueError, ImportError) as error:
            message = error.message if isinstance(error, ShellError) else str(error)
            print(f"qapigen shell: {message}", file=sys.stderr)
            return EXIT_ERROR
        shell = Shell(connection, catalog, sys.stdout, sys.stderr)
        if interactive:
            return run_interactive(shell, banner)
        return run_script(shell, sys.stdin)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    finally:
        connection.close()
