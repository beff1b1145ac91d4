"""No schema name breaks the generated package: generated code does not share a
namespace with the schema's names (what it uses itself is imported under a leading
underscore, which no QAPI name becomes, or qualified), and a name Python or the
generated code reserves is renamed (``if`` -> ``if_``), never refused.

The names tried: every Python builtin, keyword and soft keyword, every name of `typing`,
every name `qapigen_runtime` and its submodules define, and every identifier generated
code itself contains (collected from a generated package). Each is used as a type
(struct, enum, union and alternate), a struct member, an enum value, a command, a
command argument and an event name, in schemas that hold them all at once; each package
is imported and used (values round-tripped, every command through a dispatcher and a
client) and type-checked with mypy --strict together with a program using every name.
A hypothesis test mixes the names across roles in small schemas.
"""

from __future__ import annotations

import ast
import asyncio
import builtins
import functools
import importlib
import inspect
import keyword
import pkgutil
import re
import tempfile
import typing
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import qapigen_runtime
from qapigen import naming
from qapigen.frontend import schema_from_parsed
from qapigen.generate import generate_package
from qapigen.level import Level
from qapigen.parser import parse_text
from qapigen.source import QAPIError
from qapigen_testing.generated_packages import imported_package
from qapigen_testing.typecheck import link_tree, run_mypy

GOLDEN = Path(__file__).parent / "golden" / "constructs" / "expected"

# What a QAPI name may be (no leading underscore, no `q_` prefix: the generator's).
_QAPI_NAME = re.compile(r"[a-zA-Z][a-zA-Z0-9_-]*")


def _runtime_names() -> set[str]:
    names = set(dir(qapigen_runtime))
    for info in pkgutil.walk_packages(qapigen_runtime.__path__, "qapigen_runtime."):
        module = importlib.import_module(info.name)
        names.update(dir(module))
    return names


def _generated_names() -> set[str]:
    """Every identifier in a generated package: what it binds and what it uses."""
    names: set[str] = set()
    for path in GOLDEN.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Name):
                names.add(node.id)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
            elif isinstance(node, ast.Attribute):
                names.add(node.attr)
            elif isinstance(
                node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
            ):
                names.add(node.name)
            elif isinstance(node, ast.alias):
                names.update((node.asname or node.name).split("."))
    return names


def _key(name: str) -> str:
    """Names equal under this key may become the same Python name in one role:
    a schema holds one of them (clashes are a test of their own)."""
    return name.lower().replace("-", "_").strip("_")


# The names issue R found breaking generated code, whatever the lists above hold.
ISSUE_MEMBERS = ["frozenset", "classmethod", "dataclasses", "handler", "arguments"]
ISSUE_MEMBERS += ["reply"]
ISSUE_TYPES = ["TypeVar", "CommandHandlerBase", "QMPEvent", "AsyncIterator"]


def every_name() -> list[str]:
    candidates = (
        set(ISSUE_MEMBERS)
        | set(ISSUE_TYPES)
        | set(dir(builtins))
        | set(keyword.kwlist)
        | set(keyword.softkwlist)
        | set(dir(typing))
        | _runtime_names()
        | _generated_names()
    )
    return sorted(
        name
        for name in candidates
        if _QAPI_NAME.fullmatch(name) and not _key(name).startswith("q_")
    )


# Helper definitions the schemas need; their names are not among the names tried.
KIND, LEAF = "ZzKind", "ZzLeaf"
HELPERS = (
    f"{{ 'enum': '{KIND}', 'data': [ 'a' ] }}\n"
    f"{{ 'struct': '{LEAF}', 'data': {{ 'x': 'int' }} }}\n"
)


def _qapi_accepts(text: str) -> bool:
    """Whether the front end accepts `text`: QAPI's own rules (built-in type names,
    the reserved 'List' suffix, lower-case members) are not the generator's."""
    try:
        parsed = parse_text(HELPERS + text, "probe.json", Level.PERMISSIVE)
        schema_from_parsed(parsed, "probe.json", Level.PERMISSIVE)
    except QAPIError:
        return False
    return True


@functools.cache
def role_names(probe: str) -> list[str]:
    """The names QAPI accepts in one role (`probe` with NAME in it), one of each
    spelling that would become the same Python name (clashes have tests of their
    own), lower case preferred."""
    chosen: dict[str, str] = {}
    for name in sorted(names(), key=lambda n: (n != n.lower(), n)):
        if _qapi_accepts(probe.replace("NAME", name)):
            chosen.setdefault(_key(name), name)
    return sorted(chosen.values())


# The names of each role are found when a test first needs them, not at collection,
# which every pytest-xdist worker pays for (about 3 s of probing in all).
@functools.cache
def names() -> list[str]:
    return every_name()


def type_names() -> list[str]:
    return role_names("{ 'struct': 'NAME', 'data': {} }")


def member_names() -> list[str]:
    return role_names("{ 'struct': 'ZzProbe', 'data': { '*NAME': 'int' } }")


def value_names() -> list[str]:
    return role_names("{ 'enum': 'ZzProbe', 'data': [ 'NAME' ] }")


def command_names() -> list[str]:
    return role_names("{ 'command': 'NAME' }")


def event_names() -> list[str]:
    return role_names("{ 'event': 'NAME' }")


def _build(text: str, package: str) -> dict[str, str]:
    parsed = parse_text(text, f"{package}.json", Level.PERMISSIVE)
    schema = schema_from_parsed(parsed, f"{package}.json", Level.PERMISSIVE)
    return generate_package(schema, package, f"{package}.json")


def types_schema(names: Sequence[str]) -> str:
    """Every name as a type: structs, enums, unions and alternates in turn; one
    command takes and returns them all, one event carries them all."""
    lines = [HELPERS]
    for index, name in enumerate(names):
        kind = index % 4
        if kind == 0:
            lines.append(f"{{ 'struct': '{name}', 'data': {{ '*x': 'int' }} }}")
        elif kind == 1:
            lines.append(f"{{ 'enum': '{name}', 'data': [ 'a' ] }}")
        elif kind == 2:
            lines.append(
                f"{{ 'union': '{name}', 'base': {{ 'k': '{KIND}' }},"
                f" 'discriminator': 'k', 'data': {{ 'a': '{LEAF}' }} }}"
            )
        else:
            lines.append(
                f"{{ 'alternate': '{name}', 'data': {{ 'n': 'int', 'o': '{LEAF}' }} }}"
            )
    members = ", ".join(f"'*m{i}': '{name}'" for i, name in enumerate(names))
    lines.append(f"{{ 'struct': 'ZzAll', 'data': {{ {members} }} }}")
    lines.append(
        f"{{ 'command': 'zz-take', 'data': {{ {members} }}, 'returns': 'ZzAll' }}"
    )
    lines.append(f"{{ 'event': 'ZZ_ALL', 'data': {{ {members} }} }}")
    return "\n".join(lines) + "\n"


def members_schema(names: Sequence[str], value_names: Sequence[str]) -> str:
    """Every name as a struct member, a command argument and an event data member;
    every value name as an enum value."""
    members = ", ".join(f"'*{name}': 'int'" for name in names)
    values = ", ".join(f"'{name}'" for name in value_names)
    return (
        HELPERS
        + f"{{ 'enum': 'ZzValues', 'data': [ {values} ] }}\n"
        + f"{{ 'struct': 'ZzHolder', 'data': {{ {members}, '*zz': 'ZzValues' }} }}\n"
        + f"{{ 'command': 'zz-take', 'data': {{ {members} }}, 'returns': 'ZzHolder' }}\n"
        + f"{{ 'event': 'ZZ_HELD', 'data': {{ {members} }} }}\n"
    )


def commands_schema(names: Sequence[str]) -> str:
    """Every name as a command (taking one argument and returning a struct)."""
    return HELPERS + "".join(
        f"{{ 'command': '{name}', 'data': {{ 'x': 'int' }}, 'returns': '{LEAF}' }}\n"
        for name in names
    )


def events_schema(names: Sequence[str]) -> str:
    return HELPERS + "".join(
        f"{{ 'event': '{name}', 'data': {{ 'x': 'int' }} }}\n" for name in names
    )


class RecordingHandler:
    """A command handler implementing every method: records the call, answers
    `reply` (its own attributes start with `_`, as no command method does)."""

    def __init__(self, reply: object) -> None:
        self._reply = reply
        self._calls: list[tuple[str, dict[str, object]]] = []

    def __getattr__(self, method: str) -> object:
        async def handle(**kwargs: object) -> object:
            self._calls.append((method, kwargs))
            return self._reply

        return handle


class RecordingTransport:
    def __init__(self, reply: object) -> None:
        self.reply = reply
        self.sent: list[tuple[str, dict[str, object] | None]] = []

    async def execute(
        self,
        name: str,
        arguments: dict[str, object] | None = None,
        *,
        oob: bool = False,
        fds: Sequence[int] = (),
    ) -> object:
        self.sent.append((name, arguments))
        return self.reply


def _import_all(pkg: ModuleType) -> None:
    for part in ("types", "events", "commands", "introspection", "_server"):
        importlib.import_module(f"{pkg.__name__}.{part}")
    for name in pkg.types.__all__:
        getattr(pkg.types, name)
    for name in pkg.events.__all__:
        getattr(pkg.events, name)
    assert pkg.introspection.schema_info()


def _round_trip_command(
    pkg: ModuleType,
    wire_name: str,
    arguments: dict[str, object],
    reply_type: str,
    reply: dict[str, object],
) -> None:
    """`arguments` through the dispatcher to a handler answering `reply`, then the
    handler's call through a client: the client sends `arguments` again and decodes
    `reply`."""
    commands = pkg.commands
    handler = RecordingHandler(getattr(pkg.types, reply_type).from_wire(reply))
    dispatcher = commands.CommandDispatcher(handler)
    assert asyncio.run(dispatcher.dispatch(wire_name, arguments)) == reply
    [(method, kwargs)] = handler._calls
    assert method == commands.METHODS[wire_name]
    transport = RecordingTransport(reply)
    client = commands.AsyncClient(transport)
    returned = asyncio.run(getattr(client, method)(**kwargs))
    assert transport.sent == [(wire_name, arguments)]
    assert returned.to_wire() == reply


def _check(files: dict[str, str], name: str, tmp_path: Path, program: str) -> None:
    """mypy --strict over the package and `program` (which imports it as `name`)."""
    folder = tmp_path / "packages" / name
    root = tmp_path / "mypy"
    root.mkdir()
    link_tree(root, {name: folder})
    (root / "use_names.py").write_text(program)
    result = run_mypy(root, [name, "use_names.py"])
    assert result.returncode == 0, result.stdout[-6000:]


def test_names_are_not_helpers() -> None:
    assert len(names()) > 500
    for role in (
        type_names(),
        member_names(),
        value_names(),
        command_names(),
        event_names(),
    ):
        assert len(role) > 150
    assert set(ISSUE_MEMBERS) <= set(member_names())
    assert set(ISSUE_TYPES) <= set(type_names())
    for helper in (KIND, LEAF, "ZzAll", "ZzHolder", "ZzValues", "ZzProbe"):
        assert _key(helper) not in {_key(n) for n in names()}


def test_every_name_as_a_type(tmp_path: Path) -> None:
    files = _build(types_schema(type_names()), "names_types")
    with imported_package(files, tmp_path / "packages", "names_types") as pkg:
        _import_all(pkg)
        t = pkg.types
        arguments: dict[str, object] = {}
        for index, _ in enumerate(type_names()):
            wire: object = [{"x": 1}, "a", {"k": "a", "x": 2}, 5][index % 4]
            arguments[f"m{index}"] = wire
        reply = t.ZzAll.from_wire(arguments).to_wire()
        assert reply == arguments
        _round_trip_command(pkg, "zz-take", arguments, "ZzAll", reply)
        event = pkg.events.decode_event("ZZ_ALL", arguments)
        assert event is not None and event.to_wire() == arguments
        attrs = list(inspect.signature(t.ZzAll).parameters)[: len(type_names())]
    uses = "\n".join(f"    all_.{attr} = all_.{attr}" for attr in attrs)
    program = (
        "from names_types import commands, types\n\n\n"
        "async def use(client: commands.AsyncClient) -> types.ZzAll:\n"
        "    all_ = types.ZzAll.from_wire({})\n"
        f"{uses}\n"
        "    return await client.zz_take()\n"
    )
    _check(files, "names_types", tmp_path, program)


def test_every_name_as_a_member_value_and_argument(tmp_path: Path) -> None:
    files = _build(members_schema(member_names(), value_names()), "names_members")
    with imported_package(files, tmp_path / "packages", "names_members") as pkg:
        _import_all(pkg)
        t = pkg.types
        wire: dict[str, object] = {n: i for i, n in enumerate(member_names())}
        holder = t.ZzHolder.from_wire(wire)
        assert holder.to_wire() == wire and not holder.extra
        attrs = [p for p in inspect.signature(t.ZzHolder).parameters if p != "extra"]
        attrs = attrs[: len(member_names())]
        built = t.ZzHolder(**{attr: i for i, attr in enumerate(attrs)})
        assert built.to_wire() == wire
        for name in value_names():
            assert t.ZzValues.from_wire(name).value == name
            assert t.ZzHolder.from_wire({"zz": name}).to_wire() == {"zz": name}
        _round_trip_command(pkg, "zz-take", wire, "ZzHolder", wire)
        event = pkg.events.decode_event("ZZ_HELD", wire)
        assert event is not None and event.to_wire() == wire
        values = [member.name for member in t.ZzValues]
        client = inspect.signature(pkg.commands.AsyncClient.zz_take).parameters
        arguments = [p for p in client if p != "self"]
    keywords = ", ".join(f"{attr}={i}" for i, attr in enumerate(attrs))
    call = ", ".join(f"{arg}={i}" for i, arg in enumerate(arguments))
    enum_uses = "\n".join(f"    types.ZzValues.{v}," for v in values)
    program = (
        "from names_members import commands, types\n\n"
        f"VALUES = [\n{enum_uses}\n]\n\n\n"
        "async def use(client: commands.AsyncClient) -> types.ZzHolder:\n"
        f"    types.ZzHolder({keywords})\n"
        f"    return await client.zz_take({call})\n"
    )
    _check(files, "names_members", tmp_path, program)


def test_every_name_as_a_command(tmp_path: Path) -> None:
    files = _build(commands_schema(command_names()), "names_commands")
    with imported_package(files, tmp_path / "packages", "names_commands") as pkg:
        _import_all(pkg)
        for name in command_names():
            _round_trip_command(pkg, name, {"x": 1}, LEAF, {"x": 2})
        methods = [pkg.commands.METHODS[name] for name in command_names()]
    calls = "\n".join(f"    await client.{m}(x=1)" for m in methods)
    program = (
        "from names_commands import commands\n\n\n"
        "async def use(client: commands.AsyncClient) -> None:\n"
        f"{calls}\n"
    )
    _check(files, "names_commands", tmp_path, program)


def test_every_name_as_an_event(tmp_path: Path) -> None:
    files = _build(events_schema(event_names()), "names_events")
    with imported_package(files, tmp_path / "packages", "names_events") as pkg:
        _import_all(pkg)
        classes = []
        for name in event_names():
            event = pkg.events.decode_event(name, {"x": 1})
            assert event is not None and event.to_wire() == {"x": 1}
            assert name == type(event).NAME
            classes.append(type(event).__name__)
    uses = "\n".join(f"    events.{c}(x=1)" for c in classes)
    program = "from names_events import events\n\n\n" "def use() -> None:\n" f"{uses}\n"
    _check(files, "names_events", tmp_path, program)


@st.composite
def mixed_schemas(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A type, a member, an argument, a command and an event, each named from NAMES."""
    typ = draw(st.sampled_from(type_names()))
    member = draw(st.sampled_from(member_names()))
    argument = draw(st.sampled_from(member_names()))
    command = draw(st.sampled_from(command_names()))
    event = draw(st.sampled_from(event_names()))
    if len({_key(typ), _key(command), _key(event)}) < 3 or _key(command) in (
        _key(LEAF),
        _key(KIND),
    ):
        command, event = "zz-cmd", "ZZ_EV"
    text = (
        HELPERS
        + f"{{ 'struct': '{typ}', 'data': {{ '*{member}': 'int' }} }}\n"
        + f"{{ 'command': '{command}', 'data': {{ '{argument}': '{typ}' }},"
        f" 'returns': '{typ}' }}\n"
        + f"{{ 'event': '{event}', 'data': {{ '{member}': '{typ}' }} }}\n"
    )
    return text, [typ, member, argument, command, event]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mixed_schemas())
def test_names_mixed_across_roles(case: tuple[str, list[str]]) -> None:
    text, (_, member, argument, command, event) = case
    files = _build(text, "names_mixed")
    with (
        tempfile.TemporaryDirectory() as scratch,
        imported_package(files, Path(scratch), "names_mixed") as pkg,
    ):
        _import_all(pkg)
        value: dict[str, object] = {member: 1}
        type_class = next(
            getattr(pkg.types, n)
            for n in pkg.types.__all__
            if getattr(getattr(pkg.types, n), "__module__", "").endswith("names_mixed")
            and n not in (KIND, LEAF)
        )
        assert type_class.from_wire(value).to_wire() == value
        _round_trip_command(pkg, command, {argument: value}, type_class.__name__, value)
        decoded = pkg.events.decode_event(event, {member: value})
        assert decoded is not None and decoded.to_wire() == {member: value}


def test_class_bodies_use_no_builtin_a_member_may_shadow() -> None:
    """Annotations and decorators in a generated class resolve names in the class
    body first (mypy does): every builtin they use is a name members never get."""
    used: set[str] = set()
    for path in GOLDEN.parent.parent.rglob("expected/**/*.py"):
        tree = ast.parse(path.read_text())
        for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
            for statement in cls.body:
                nodes: list[ast.AST] = []
                if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
                    nodes += statement.decorator_list
                    nodes += [
                        a.annotation
                        for a in ast.walk(statement.args)
                        if isinstance(a, ast.arg) and a.annotation
                    ]
                    nodes += [statement.returns] if statement.returns else []
                elif isinstance(statement, ast.AnnAssign):
                    nodes += [statement.annotation]
                    nodes += [statement.value] if statement.value else []
                elif isinstance(statement, ast.Assign):
                    nodes.append(statement.value)
                for node in nodes:
                    used.update(
                        n.id
                        for n in ast.walk(node)
                        if isinstance(n, ast.Name) and hasattr(builtins, n.id)
                    )
    assert {"classmethod", "frozenset", "str"} <= used  # the walk finds them
    assert used <= naming.RESERVED_ATTRIBUTES, used - naming.RESERVED_ATTRIBUTES
