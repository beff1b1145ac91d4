"""Properties of the generated wire codec, for every type of a schema.

Values come from `wire_strategies`, derived from the schema IR, so the same properties
hold for the bundled schema (every type, command and event) and for samples of QEMU
7.2's and 5.2's complete schemas (generated into temporary packages; 5.2 brings simple
unions):

- a valid wire value survives `to_wire(from_wire(v))` exactly, decoded leniently (a
  client) and strictly (a server);
- a broken value (wrong JSON kind, integer out of its width's range, a required member
  missing, an unknown discriminator, a non-object for an object) is refused with a
  `DecodeError` that names the JSON path of the fault;
- members a newer QEMU adds survive client-side decoding and are refused server-side
  with QEMU's "Parameter 'x' is unexpected";
- commands and events go through the generated dispatcher, clients and event
  decoders unchanged;
- a server refuses arguments in QEMU 7.2's words: integer faults against the wording
  qemu-system-x86_64 7.2 was observed to give, and (with QEMU installed) every other
  fault against a running QEMU 7.2.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
import json
import shutil
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from qapigen.frontend import load_schema
from qapigen.generate import generate_package
from qapigen.schema import (
    BuiltinType,
    Command,
    EnumType,
    Event,
    ObjectType,
    Schema,
    Type,
)
from qapigen_runtime import codec
from qapigen_runtime.qmp.errors import GenericError, QMPCommandError
from qapigen_runtime.qmp.sync_client import SyncQMPClient
from qapigen_testing.generated_packages import imported_package
from qapigen_testing.qemu_fixtures import QEMU_BINARY, QemuLauncher, qemu_version
from qapigen_testing.wire_strategies import (
    BUILTIN_DECODERS,
    INTEGER_BOUNDS,
    REJECTED_BELOW,
    GeneratedCodec,
    Mutation,
    WireValues,
    accepted_kinds,
    mutated,
    mutation_sites,
    mutations,
    named_types,
    same_wire,
    unknown_member_paths,
)

REPO = Path(__file__).resolve().parents[2]
BUNDLED_SCHEMA = REPO / "schema" / "migration.json"
SHARED = REPO.parent / "shared"


@dataclass(frozen=True)
class Sample:
    """Which names of one QEMU release's complete schema the properties visit:
    `always` ones, then an even spread of about `size` others per kind."""

    release: str
    types: Sequence[str]
    commands: Sequence[str]
    events: Sequence[str]
    size: int

    @property
    def schema_path(self) -> Path:
        return SHARED / "qemu" / self.release / "qapi" / "qapi-schema.json"

    @property
    def missing(self) -> str:
        return (
            f"../shared/qemu/{self.release}/qapi/qapi-schema.json is absent:"
            f" QEMU {self.release}'s schema lives there"
        )


SAMPLES = {
    "qemu72": Sample(
        "7.2",
        # deep unions, recursive alternates, the migration reply, every kind of
        # alternate, 'any' and 'number' members
        types=[
            "MigrationInfo",
            "BlockdevOptions",
            "BlockdevRef",
            "BlockdevRefOrNull",
            "SocketAddressLegacy",
            "StrOrNull",
            "ObjectOptions",
            "Qcow2OverlapChecks",
            "CpuModelExpansionInfo",
            "SchemaInfo",
            "ObjectPropertyInfo",
            "CpuModelInfo",
            "BlockDeviceTimedStats",
        ],
        # boxed unions, 'any' arguments and replies
        commands=[
            "query-migrate",
            "migrate-set-parameters",
            "blockdev-add",
            "object-add",
            "qom-set",
            "qom-get",
            "query-qmp-schema",
        ],
        events=["MIGRATION", "BLOCK_JOB_COMPLETED"],
        size=24,
    ),
    "qemu52": Sample(
        "5.2",
        # simple unions (a 'type' tag and a 'data' wrapper per branch)
        types=[
            "SocketAddressLegacy",
            "TransactionAction",
            "ImageInfoSpecific",
            "KeyValue",
            "ChardevBackend",
            "MigrationInfo",
        ],
        commands=["transaction", "chardev-add", "query-migrate"],
        events=["MIGRATION"],
        size=10,
    ),
}

# Example budgets: the whole file stays under a minute on two shared cores.
FEW = settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SOME = settings(FEW, max_examples=15)


@dataclass(frozen=True)
class Bindings:
    """A schema and the package generated from it."""

    schema: Schema
    types: ModuleType
    commands: ModuleType
    events: ModuleType

    @functools.cached_property
    def codec(self) -> GeneratedCodec:
        return GeneratedCodec(self.schema, self.types)

    def type(self, name: str) -> Type:
        typ = self.schema.lookup_type(name)
        assert typ is not None, name
        return typ

    def command(self, name: str) -> Command:
        command = self.schema.lookup_entity(name)
        assert isinstance(command, Command), name
        return command


@pytest.fixture(scope="session")
def bundled() -> Bindings:
    schema = load_schema(str(BUNDLED_SCHEMA))
    return Bindings(
        schema,
        importlib.import_module("qapigen_migration.types"),
        importlib.import_module("qapigen_migration.commands"),
        importlib.import_module("qapigen_migration.events"),
    )


def _generate(factory: pytest.TempPathFactory, which: str) -> Iterator[Bindings]:
    """The bindings of one QEMU release's schema, generated into a temporary
    package (imported while the fixture lasts)."""
    sample = SAMPLES[which]
    if not sample.schema_path.exists():
        pytest.skip(sample.missing)
    schema = load_schema(str(sample.schema_path))
    package = f"qapigen_wire_{which}"
    root = factory.mktemp("generated")
    files = generate_package(schema, package=package, schema_name="qapi-schema.json")
    with imported_package(files, root, package):
        yield Bindings(
            schema,
            importlib.import_module(f"{package}.types"),
            importlib.import_module(f"{package}.commands"),
            importlib.import_module(f"{package}.events"),
        )


@pytest.fixture(scope="session")
def qemu72(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bindings]:
    yield from _generate(tmp_path_factory, "qemu72")


@pytest.fixture(scope="session")
def qemu52(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bindings]:
    yield from _generate(tmp_path_factory, "qemu52")


@functools.cache
def _schema(path: Path) -> Schema:
    return load_schema(str(path))


def _sample(names: Sequence[str], always: Sequence[str], size: int) -> list[str]:
    """`always` plus an even spread over the other names, the same on every run."""
    ordered = sorted(names)
    rest = [name for name in ordered if name not in always]
    step = max(1, len(rest) // size)
    return [name for name in always if name in ordered] + rest[::step]


def _cases(
    names: Callable[[Schema], list[str]],
    always: Callable[[Sample], Sequence[str]],
    share: float = 1.0,
) -> list[object]:
    """Every name of the bundled schema, and a sample of each QEMU release's, as
    (which bindings, name) parameters."""
    cases: list[object] = [
        pytest.param("bundled", name, id=f"bundled-{name}")
        for name in names(_schema(BUNDLED_SCHEMA))
    ]
    for which, sample in SAMPLES.items():
        if not sample.schema_path.exists():
            skip = pytest.mark.skip(reason=sample.missing)
            cases.append(pytest.param(which, "", id=which, marks=skip))
            continue
        chosen = _sample(
            names(_schema(sample.schema_path)),
            always(sample),
            max(1, int(sample.size * share)),
        )
        cases += [pytest.param(which, name, id=f"{which}-{name}") for name in chosen]
    return cases


def _type_names(schema: Schema) -> list[str]:
    return [typ.name for typ in named_types(schema)]


def _command_names(schema: Schema) -> list[str]:
    return [command.name for command in schema.commands()]


def _event_names(schema: Schema) -> list[str]:
    return [event.name for event in schema.events()]


TYPE_CASES = _cases(_type_names, lambda sample: sample.types)
COMMAND_CASES = _cases(_command_names, lambda sample: sample.commands, share=0.5)
EVENT_CASES = _cases(_event_names, lambda sample: sample.events, share=0.25)


def _bindings(request: pytest.FixtureRequest, which: str) -> Bindings:
    bindings = request.getfixturevalue(which)
    assert isinstance(bindings, Bindings)
    return bindings


def _budget(which: str) -> settings:
    return SOME if which == "bundled" else FEW


# ---------------------------------------------------------------- valid values


@pytest.mark.parametrize(("which", "name"), TYPE_CASES)
def test_valid_value_round_trips_exactly(
    request: pytest.FixtureRequest, which: str, name: str
) -> None:
    bindings = _bindings(request, which)
    typ = bindings.type(name)
    wire_codec = bindings.codec

    @_budget(which)
    @given(WireValues(bindings.schema).of(typ))
    def check(value: object) -> None:
        for strict in (False, True):
            back = wire_codec.round_trip(typ, value, strict)
            assert same_wire(back, value), (strict, value, back)

    check()


@pytest.mark.parametrize(("which", "name"), TYPE_CASES)
def test_unknown_members_kept_by_clients_refused_by_servers(
    request: pytest.FixtureRequest, which: str, name: str
) -> None:
    bindings = _bindings(request, which)
    typ = bindings.type(name)
    wire_codec = bindings.codec

    @_budget(which)
    @given(WireValues(bindings.schema, unknown_members=True).of(typ))
    def check(value: object) -> None:
        back = wire_codec.round_trip(typ, value)
        assert same_wire(back, value), (value, back)
        unknown = unknown_member_paths(typ, value)
        if not unknown:
            wire_codec.round_trip(typ, value, strict=True)
            return
        with pytest.raises(codec.DecodeError) as caught:
            wire_codec.decoder(typ)(value, "", True)
        assert caught.value.path in unknown
        expected = f"Parameter '{caught.value.path}' is unexpected"
        assert caught.value.qmp_message() == expected

    check()


# ---------------------------------------------------------------- invalid values


def _invalid_cases() -> list[object]:
    # 'any' takes every JSON value: nothing to break
    return [case for case in TYPE_CASES if getattr(case, "values")[1] != "any"]


@pytest.mark.parametrize(("which", "name"), _invalid_cases())
def test_invalid_value_refused_naming_its_path(
    request: pytest.FixtureRequest, which: str, name: str
) -> None:
    bindings = _bindings(request, which)
    typ = bindings.type(name)
    decode = bindings.codec.decoder(typ)

    @_budget(which)
    @given(WireValues(bindings.schema).of(typ), st.data())
    def check(value: object, data: st.DataObject) -> None:
        candidates: list[tuple[Mutation, bool]] = []
        for site in mutation_sites(typ, value):
            for mutation in mutations(site):
                candidates.append((mutation, True))
                if not mutation.strict_only:
                    candidates.append((mutation, False))
            if isinstance(site.type, EnumType):
                # only a server refuses a value a newer QEMU may have added
                unknown = Mutation("unknown value", site.location, site.path, "x-new")
                candidates.append((unknown, True))
        mutation, strict = data.draw(st.sampled_from(candidates))
        broken = mutated(value, mutation)
        with pytest.raises(codec.DecodeError) as caught:
            decode(broken, "", strict)
        error = caught.value
        assert error.path == mutation.path, (mutation.what, broken, str(error))
        prefix = f"{mutation.path}: " if mutation.path else ""
        assert str(error).startswith(prefix) and error.message in str(error)

    check()


def _integer_types(schema: Schema) -> list[BuiltinType]:
    return [
        typ
        for typ in schema.types()
        if isinstance(typ, BuiltinType) and accepted_kinds(typ) == {"int"}
    ]


def test_every_integer_width_accepts_its_range_and_refuses_beyond(
    bundled: Bindings,
) -> None:
    widths = _integer_types(bundled.schema)
    assert {typ.name for typ in widths} == set(INTEGER_BOUNDS)
    wire_codec = bundled.codec
    for typ in widths:
        low, high = INTEGER_BOUNDS[typ.name]
        array = bundled.type(f"{typ.name}List")
        for strict in (False, True):
            back = wire_codec.round_trip(array, [low, high], strict)
            assert same_wire(back, [low, high]), typ.name
            for number in (REJECTED_BELOW[typ.name], high + 1):
                with pytest.raises(codec.DecodeError) as caught:
                    wire_codec.decoder(array)([low, number], "", strict)
                assert caught.value.path == "[1]", (typ.name, number)


@pytest.mark.parametrize("width", ["uint64", "size"])
def test_uint64_and_size_take_negative_int64_as_twos_complement(
    bundled: Bindings, width: str
) -> None:
    # QEMU 7.2 accepts -1 for a uint64 or size argument (backward compatibility); a
    # server built on the bindings must do the same, and read it as 2**64 - 1.
    decode = bundled.codec.decoder(bundled.type(width))
    assert decode(-1, "", True) == 2**64 - 1
    assert decode(-(2**63), "", True) == 2**63


def _qemu72_integer_faults() -> Iterator[tuple[str, object, str]]:
    """(QAPI type, value, QEMU 7.2's error) for integer faults in a member `x` of an
    argument `ram`, as qemu-system-x86_64 7.2 answers them (observed with
    migrate-set-parameters, block-dirty-bitmap-add, blockdev-add and balloon).

    Signed types read through int64: anything that is not an int64 is a type error
    naming the full path; the narrower ones then check their range, naming the
    member alone and the C type. Unsigned types and 'size' read through uint64,
    whose faults name the full path and "uint64"; the narrower ones then check their
    range like the signed ones.
    """
    wrong_kinds: list[object] = ["4096", 1.5, True, None]
    beyond_64 = [2**64, -(2**63) - 1]
    for width, (low, high) in INTEGER_BOUNDS.items():
        signed = low < 0
        if signed:
            through = "Invalid parameter type for 'ram.x', expected: integer"
            outside_64 = [2**63, -(2**63) - 1]
        else:
            through = "Parameter 'ram.x' expects uint64"
            outside_64 = beyond_64
        for value in wrong_kinds + outside_64:
            yield width, value, through
        if width not in ("int", "int64", "uint64", "size"):
            narrow = f"Parameter 'x' expects {width}_t"
            for value in (low - 1 if signed else -1, high + 1):
                yield width, value, narrow


def _integer_fault_cases() -> list[object]:
    return [
        pytest.param(width, value, message, id=f"{width}-{value!r}")
        for width, value, message in _qemu72_integer_faults()
    ]


def _codec_wording(width: str, value: object) -> str | None:
    decode = getattr(codec, BUILTIN_DECODERS[width])
    try:
        codec.required({"x": value}, "x", "ram", True, decode)
    except codec.DecodeError as error:
        return error.qmp_message()
    return None


@pytest.mark.parametrize(("width", "value", "message"), _integer_fault_cases())
def test_server_integer_faults_read_like_qemu_7_2(
    width: str, value: object, message: str
) -> None:
    assert _codec_wording(width, value) == message


# Commands whose argument faults are compared with a running QEMU 7.2: their arguments
# cover every integer width but int8/16, enums, arrays of structs, alternates and
# nested paths, and refused arguments have no effect on a guest.
COMPARED_WITH_QEMU = ["migrate-set-parameters", "migrate-set-capabilities"]


@pytest.fixture(scope="module")
def qemu72_monitor() -> Iterator[SyncQMPClient]:
    """A QMP connection to a real qemu-system-x86_64 7.2 (no guest devices)."""
    if shutil.which(QEMU_BINARY) is None:
        pytest.skip(f"{QEMU_BINARY} is not installed")
    if qemu_version() != (7, 2):
        pytest.skip("the wording compared is QEMU 7.2's")
    with QemuLauncher() as launcher:
        qemu = launcher.start("wording")
        client = SyncQMPClient()
        client.connect(qemu.qmp_address)
        try:
            yield client
        finally:
            client.close()


@pytest.mark.qemu
@pytest.mark.parametrize("name", COMPARED_WITH_QEMU)
def test_server_refuses_arguments_in_qemu_7_2_words(
    request: pytest.FixtureRequest, qemu72_monitor: SyncQMPClient, name: str
) -> None:
    bindings = _bindings(request, "qemu72")
    command = bindings.command(name)
    arg_type = command.arg_type
    assert arg_type is not None
    dispatcher = bindings.commands.CommandDispatcher(RecordingHandler(None))

    @settings(FEW, max_examples=30)
    @given(WireValues(bindings.schema, max_depth=2).of(arg_type), st.data())
    def check(value: object, data: st.DataObject) -> None:
        candidates: list[Mutation] = []
        for site in mutation_sites(arg_type, value):
            if not site.location:
                continue  # the arguments object itself: QMP's framing, not QAPI's
            candidates += mutations(site)
            if isinstance(site.type, EnumType):
                candidates.append(
                    Mutation("unknown value", site.location, site.path, "x-new")
                )
        assume(candidates)
        mutation = data.draw(st.sampled_from(candidates))
        broken = mutated(value, mutation)
        assert isinstance(broken, dict)
        with pytest.raises(GenericError) as ours:
            asyncio.run(dispatcher.dispatch(name, broken))
        with pytest.raises(QMPCommandError) as theirs:
            qemu72_monitor.execute(name, broken)
        assert ours.value.desc == theirs.value.desc, (mutation.what, broken)

    check()


RECORDED_REPLY = REPO / "bench" / "data" / "query-migrate-qemu-7.2-completed.json"


@pytest.mark.parametrize("which", ["qemu72", "bundled"])
def test_recorded_qemu72_reply_decodes_and_comes_back(
    request: pytest.FixtureRequest, which: str
) -> None:
    # A real reply (recorded for the decode benchmark): the 7.2 bindings read all of
    # it; the bundled 5.0-era ones keep what 7.2 added in `extra`. JSON integers in
    # 'number' members come back as floats, equal in value.
    bindings = _bindings(request, which)
    reply = json.loads(RECORDED_REPLY.read_text(encoding="utf-8"))["return"]
    info = bindings.codec.decoder(bindings.type("MigrationInfo"))(reply, "", False)
    assert getattr(info, "to_wire")() == reply
    ram = getattr(info, "ram")
    assert getattr(ram, "normal_bytes") == reply["ram"]["normal-bytes"]
    newer = getattr(ram, "extra")
    if which == "qemu72":
        assert newer == {}
    else:
        assert "precopy-bytes" in newer


def _argument_free_queries(schema: Schema) -> list[Command]:
    return [
        command
        for command in schema.commands()
        if command.name.startswith("query-")
        and command.ret_type is not None
        and (
            command.arg_type is None
            or all(member.optional for member in command.arg_type.members)
        )
    ]


@pytest.mark.qemu
def test_real_qemu_7_2_replies_decode_strictly_and_come_back(
    qemu72: Bindings, qemu72_monitor: SyncQMPClient
) -> None:
    # What QEMU 7.2 answers to every query that needs no argument (query-qmp-schema
    # included) is valid for the bindings of its own schema, with nothing unknown.
    decoded = 0
    for command in _argument_free_queries(qemu72.schema):
        assert command.ret_type is not None
        try:
            reply = qemu72_monitor.execute(command.name)
        except QMPCommandError:
            continue  # not available on this machine (no KVM, no SEV, ...)
        typed = qemu72.codec.decoder(command.ret_type)(reply, "", True)
        assert qemu72.codec.encoder(command.ret_type)(typed) == reply, command.name
        decoded += 1
    assert decoded >= 20, "most argument-free queries answer on any machine"


def test_number_takes_a_json_integer_as_float(bundled: Bindings) -> None:
    decoded = bundled.codec.decoder(bundled.type("number"))(3, "", False)
    assert type(decoded) is float and decoded == 3.0


def test_error_names_the_member_path_in_a_migration_reply(bundled: Bindings) -> None:
    stats = bundled.type("MigrationStats")
    assert isinstance(stats, ObjectType)
    ram: dict[str, object] = {m.name: 0 for m in stats.members if not m.optional}
    ram["normal-bytes"] = "4096"
    reply = {"status": "active", "ram": ram}
    with pytest.raises(codec.DecodeError) as caught:
        bundled.codec.decoder(bundled.type("MigrationInfo"))(reply, "", False)
    assert str(caught.value) == "ram.normal-bytes: expected int, got str"
    assert caught.value.qmp_message() == (
        "Invalid parameter type for 'ram.normal-bytes', expected: integer"
    )


# ---------------------------------------------------------------- commands and events


class RecordingHandler:
    """A command handler for any schema: records each call, answers `reply`."""

    def __init__(self, reply: object) -> None:
        self.reply = reply
        self.calls: list[tuple[str, tuple[object, ...], dict[str, object]]] = []

    def __getattr__(self, method: str) -> object:
        async def handle(*args: object, **kwargs: object) -> object:
            self.calls.append((method, args, kwargs))
            return self.reply

        return handle


class RecordingTransport:
    """An async QMP transport that records what a client sends, answers `reply`."""

    def __init__(self, reply: object) -> None:
        self.reply = reply
        self.sent: list[tuple[str, dict[str, object] | None]] = []
        self.fds: list[int] = []

    async def execute(
        self,
        name: str,
        arguments: dict[str, object] | None = None,
        *,
        oob: bool = False,
        fds: Sequence[int] = (),
    ) -> object:
        self.sent.append((name, arguments))
        self.fds = list(fds)
        return self.reply


def _arguments(bindings: Bindings, command: Command) -> st.SearchStrategy[object]:
    if command.arg_type is None:
        return st.just({})
    return WireValues(bindings.schema).of(command.arg_type)


def _reply(bindings: Bindings, command: Command) -> st.SearchStrategy[object]:
    if command.ret_type is None:
        return st.just({})
    return WireValues(bindings.schema).of(command.ret_type)


async def _serve_then_call(
    bindings: Bindings, command: Command, arguments: dict[str, object], reply: object
) -> tuple[object, object, RecordingTransport]:
    """Dispatch `arguments` to a handler answering `reply` (decoded), then make the
    same call the handler received through a client whose peer answers `reply`."""
    typed_reply = None
    if command.ret_type is not None:
        typed_reply = bindings.codec.decoder(command.ret_type)(reply, "", False)
    handler = RecordingHandler(typed_reply)
    dispatcher = bindings.commands.CommandDispatcher(handler)
    served = await dispatcher.dispatch(command.name, arguments)
    [(method, args, kwargs)] = handler.calls
    transport = RecordingTransport(reply)
    client = bindings.commands.AsyncClient(transport)
    passed_fd = "fd" in inspect.signature(getattr(client, method)).parameters
    if passed_fd:  # getfd, add-fd: the descriptor goes with the command
        kwargs = {**kwargs, "fd": 7}
    with warnings.catch_warnings():
        # deprecated commands warn when called; that is not what is tested here
        warnings.simplefilter("ignore", DeprecationWarning)
        returned = await getattr(client, method)(*args, **kwargs)
    assert transport.fds == ([7] if passed_fd else [])
    encoded = None
    if command.ret_type is not None:
        encoded = bindings.codec.encoder(command.ret_type)(returned)
    return served, encoded, transport


@pytest.mark.parametrize(("which", "name"), COMMAND_CASES)
def test_command_arguments_and_reply_cross_server_and_client_unchanged(
    request: pytest.FixtureRequest, which: str, name: str
) -> None:
    bindings = _bindings(request, which)
    command = bindings.command(name)

    @_budget(which)
    @given(_arguments(bindings, command), _reply(bindings, command))
    def check(arguments: object, reply: object) -> None:
        assert isinstance(arguments, dict)
        served, returned, transport = asyncio.run(
            _serve_then_call(bindings, command, arguments, reply)
        )
        assert same_wire(served, reply)
        [(sent_name, sent)] = transport.sent
        assert sent_name == name
        assert same_wire(sent or {}, arguments), (arguments, sent)
        if command.ret_type is not None:
            assert same_wire(returned, reply)

    check()


@pytest.mark.parametrize(("which", "name"), COMMAND_CASES)
def test_server_refuses_an_unknown_argument_like_qemu(
    request: pytest.FixtureRequest, which: str, name: str
) -> None:
    bindings = _bindings(request, which)
    command = bindings.command(name)
    handler = RecordingHandler(None)
    dispatcher = bindings.commands.CommandDispatcher(handler)

    @_budget(which)
    @given(
        _arguments(bindings, command),
        st.from_regex(r"x-newer-[a-z]{1,6}", fullmatch=True),
    )
    def check(arguments: object, unknown: str) -> None:
        assert isinstance(arguments, dict)
        sent = {**arguments, unknown: 1}
        if not command.gen:
            # QEMU leaves a 'gen': false command's arguments to its handler
            # (device_add takes the device's properties): nothing is refused
            handler.calls.clear()
            asyncio.run(dispatcher.dispatch(name, sent))
            assert len(handler.calls) == 1
            return
        with pytest.raises(GenericError) as caught:
            asyncio.run(dispatcher.dispatch(name, sent))
        assert caught.value.desc == f"Parameter '{unknown}' is unexpected"
        assert not handler.calls

    check()


@pytest.mark.parametrize(("which", "name"), EVENT_CASES)
def test_event_data_round_trips_with_what_a_newer_qemu_adds(
    request: pytest.FixtureRequest, which: str, name: str
) -> None:
    bindings = _bindings(request, which)
    event = bindings.schema.lookup_entity(name)
    assert isinstance(event, Event)
    values = WireValues(bindings.schema, unknown_members=True)
    data_values = st.just({}) if event.arg_type is None else values.of(event.arg_type)

    @_budget(which)
    @given(data_values)
    def check(data: object) -> None:
        if event.arg_type is None:
            # QEMU leaves 'data' out of an event that has none
            assert bindings.events.decode_event(name) is not None
        typed = bindings.events.decode_event(name, data)
        assert typed is not None and name == typed.NAME
        assert same_wire(typed.to_wire(), data)

    check()


def test_event_a_newer_qemu_adds_is_not_decoded(bundled: Bindings) -> None:
    assert bundled.events.decode_event("X_NEWER_EVENT", {"a": 1}) is None


def test_enum_value_a_newer_qemu_adds_is_kept_by_clients(bundled: Bindings) -> None:
    wire_codec = bundled.codec
    enums = [t for t in named_types(bundled.schema) if isinstance(t, EnumType)]
    assert enums
    for enum_type in enums:
        assert same_wire(
            wire_codec.round_trip(enum_type, "x-newer-value"), "x-newer-value"
        )
        with pytest.raises(codec.DecodeError) as caught:
            wire_codec.decoder(enum_type)("x-newer-value", "", True)
        assert caught.value.kind == "enum"
