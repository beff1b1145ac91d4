"""Members a server may leave out though the schema requires them.

A QEMU built without a member's `if` condition has no such member (nor the members of
a conditional union branch, whose tag value it still sends), and QEMU run with
``-compat deprecated-output=hide`` drops deprecated members from what it sends. A
client decodes their absence as None; a server decoding arguments strictly still
requires them, unless its own conditions leave them out.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import warnings
from collections.abc import Callable, Collection, Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from qapigen.frontend import load_schema
from qapigen.generate import generate_package
from qapigen_runtime.codec import DecodeError
from qapigen_runtime.qmp.errors import GenericError
from qapigen_testing.generated_packages import imported_package
from qapigen_testing.paths import qemu_release

SCHEMA = """
{ 'enum': 'Mode', 'data': [ 'a', { 'name': 'b', 'if': 'CONFIG_B' }, 'c' ] }
{ 'struct': 'Info',
  'data': { 'model': 'str',
            'only-here': { 'type': ['str'], 'if': 'TARGET_S390X' },
            'old': { 'type': 'int', 'features': [ 'deprecated' ] },
            '*opt': 'int' } }
{ 'struct': 'BranchA', 'data': { 'x': 'int' } }
{ 'struct': 'BranchC', 'data': { 'y': 'str' } }
{ 'union': 'Shape', 'base': { 'mode': 'Mode' }, 'discriminator': 'mode',
  'data': { 'a': { 'type': 'BranchA', 'if': 'CONFIG_A' }, 'c': 'BranchC' } }
{ 'command': 'query-info', 'returns': 'Info' }
{ 'command': 'take-info', 'data': { 'info': 'Info' } }
{ 'command': 'take-shape', 'data': { 'shape': 'Shape' } }
{ 'command': 'set-info',
  'data': { 'name': 'str', 'cfg': { 'type': 'int', 'if': 'CONFIG_X' },
            'dep': { 'type': 'int', 'features': [ 'deprecated' ] } } }
"""


@pytest.fixture(scope="module")
def pkg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    root = tmp_path_factory.mktemp("absent_members")
    schema_file = root / "absent.json"
    schema_file.write_text(SCHEMA)
    files = generate_package(load_schema(str(schema_file)), "absent_pkg", "absent.json")
    with imported_package(files, root, "absent_pkg") as package:
        yield SimpleNamespace(
            types=importlib.import_module(f"{package.__name__}.types"),
            commands=importlib.import_module(f"{package.__name__}.commands"),
        )


class _Reply:
    """A transport that answers every command with one wire value."""

    def __init__(self, reply: object) -> None:
        self.reply = reply
        self.sent: list[tuple[str, object]] = []

    async def execute(self, name: str, arguments: object = None, **_: object) -> object:
        self.sent.append((name, arguments))
        return self.reply


class _Handler:
    def __init__(self) -> None:
        self.got: dict[str, Any] = {}

    async def take_info(self, *, info: Any) -> None:
        self.got["info"] = info

    async def take_shape(self, *, shape: Any) -> None:
        self.got["shape"] = shape

    async def set_info(self, **arguments: object) -> None:
        self.got.update(arguments)


def _serve(
    pkg: SimpleNamespace,
    name: str,
    arguments: dict[str, object],
    defined: Collection[str] | None,
) -> dict[str, Any]:
    """Dispatch one command to a handler deriving CommandHandlerBase; what it got."""
    base = pkg.commands.CommandHandlerBase
    handler_type = type("Handler", (_Handler, base), {})
    handler = handler_type()
    dispatcher = pkg.commands.CommandDispatcher(handler, defined=defined)
    asyncio.run(dispatcher.dispatch(name, arguments))
    got: dict[str, Any] = handler.got
    return got


def _refusal(
    pkg: SimpleNamespace,
    name: str,
    arguments: dict[str, object],
    defined: Collection[str] | None,
) -> str:
    with pytest.raises(GenericError) as refused:
        _serve(pkg, name, arguments, defined)
    return str(refused.value.desc)


def test_the_issue_reply_decodes_through_the_typed_client(pkg: SimpleNamespace) -> None:
    transport = _Reply({"model": "x"})
    info = asyncio.run(pkg.commands.AsyncClient(transport).query_info())
    assert info == pkg.types.Info(model="x")
    assert (info.only_here, info.old, info.opt) == (None, None, None)
    assert info.to_wire() == {"model": "x"}


def test_present_members_still_decode_and_are_checked(pkg: SimpleNamespace) -> None:
    wire = {"model": "x", "only-here": ["s"], "old": 3}
    info = pkg.types.Info.from_wire(wire)
    assert (info.only_here, info.old) == (["s"], 3)
    assert info.to_wire() == wire
    with pytest.raises(DecodeError, match=r"only-here\[0\]: expected str, got int"):
        pkg.types.Info.from_wire({"model": "x", "only-here": [1]})
    with pytest.raises(DecodeError, match="old: expected int, got str"):
        pkg.types.Info.from_wire({"model": "x", "old": "3"})


def test_an_unconditional_required_member_is_still_required(
    pkg: SimpleNamespace,
) -> None:
    with pytest.raises(DecodeError, match="model: missing member"):
        pkg.types.Info.from_wire({"only-here": []})
    with pytest.raises(TypeError):
        pkg.types.Info()


def test_annotations_say_none_for_what_may_be_absent(pkg: SimpleNamespace) -> None:
    hints = pkg.types.Info.__annotations__
    assert hints["model"] == "str"
    assert hints["only_here"] == "list[str] | None"
    assert hints["old"] == "int | None"
    parameters = pkg.commands.AsyncClient.set_info.__annotations__
    assert parameters["cfg"] == "int | None"
    assert parameters["dep"] == "int | None"


def test_strict_decoding_requires_them_on_the_whole_schema(
    pkg: SimpleNamespace,
) -> None:
    with pytest.raises(DecodeError, match="only-here: missing member"):
        pkg.types.Info.from_wire({"model": "x", "old": 1}, "", True)
    with pytest.raises(DecodeError, match="old: missing member"):
        pkg.types.Info.from_wire({"model": "x", "only-here": []}, "", True)


def test_server_with_the_condition_requires_the_member(pkg: SimpleNamespace) -> None:
    info = {"model": "x", "old": 1}
    assert (
        _refusal(pkg, "take-info", {"info": info}, {"TARGET_S390X"})
        == "Parameter 'info.only-here' is missing"
    )
    assert (
        _refusal(pkg, "take-info", {"info": info}, None)
        == "Parameter 'info.only-here' is missing"
    )


def test_server_without_the_condition_neither_requires_nor_accepts_it(
    pkg: SimpleNamespace,
) -> None:
    got = _serve(pkg, "take-info", {"info": {"model": "x", "old": 1}}, set())
    assert got["info"].to_wire() == {"model": "x", "old": 1}
    sent = {"model": "x", "old": 1, "only-here": []}
    assert (
        _refusal(pkg, "take-info", {"info": sent}, set())
        == "Parameter 'info.only-here' is unexpected"
    )


def test_deprecated_arguments_stay_required_on_input(pkg: SimpleNamespace) -> None:
    # -compat deprecated-output=hide concerns what QEMU sends, never what it reads
    assert (
        _refusal(pkg, "set-info", {"name": "n"}, set()) == "Parameter 'dep' is missing"
    )
    info = {"model": "x", "only-here": []}
    assert (
        _refusal(pkg, "take-info", {"info": info}, {"TARGET_S390X"})
        == "Parameter 'info.old' is missing"
    )


def test_conditional_arguments_follow_the_server_conditions(
    pkg: SimpleNamespace,
) -> None:
    got = _serve(pkg, "set-info", {"name": "n", "dep": 1}, set())
    assert got == {"name": "n", "cfg": None, "dep": 1}
    assert (
        _refusal(pkg, "set-info", {"name": "n", "dep": 1}, {"CONFIG_X"})
        == "Parameter 'cfg' is missing"
    )
    assert (
        _refusal(pkg, "set-info", {"name": "n", "dep": 1, "cfg": 2}, set())
        == "Parameter 'cfg' is unexpected"
    )
    got = _serve(pkg, "set-info", {"name": "n", "dep": 1, "cfg": 2}, {"CONFIG_X"})
    assert got["cfg"] == 2
    # an argument the build lacks is a leftover, reported after the arguments are
    # decoded (QEMU's visitor checks for leftovers last): a type error comes first
    assert (
        _refusal(pkg, "set-info", {"name": 5, "dep": 1, "cfg": 2}, set())
        == "Invalid parameter type for 'name', expected: string"
    )


def test_client_leaves_out_what_it_is_not_given(pkg: SimpleNamespace) -> None:
    transport = _Reply(None)
    client = pkg.commands.AsyncClient(transport)
    asyncio.run(client.set_info(name="n"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        asyncio.run(client.set_info(name="n", cfg=0, dep=0))
    assert transport.sent == [
        ("set-info", {"name": "n"}),
        ("set-info", {"name": "n", "cfg": 0, "dep": 0}),
    ]


def test_leaving_out_a_deprecated_member_does_not_warn(pkg: SimpleNamespace) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        pkg.types.Info(model="x")
    with pytest.warns(DeprecationWarning, match="member 'old' of Info"):
        pkg.types.Info(model="x", old=1)


def test_a_conditional_branch_without_its_members(pkg: SimpleNamespace) -> None:
    shape = pkg.types.decode_shape({"mode": "a"}, "", False)
    assert type(shape).__name__ == "Shape_A"
    assert shape.x is None
    assert shape.to_wire() == {"mode": "a"}
    assert pkg.types.decode_shape({"mode": "a", "x": 2}, "", False).x == 2
    # an unconditional branch keeps its required members
    with pytest.raises(DecodeError, match="y: missing member"):
        pkg.types.decode_shape({"mode": "c"}, "", False)


def test_a_conditional_branch_on_the_server(pkg: SimpleNamespace) -> None:
    got = _serve(pkg, "take-shape", {"shape": {"mode": "a"}}, set())
    assert got["shape"].x is None
    assert (
        _refusal(pkg, "take-shape", {"shape": {"mode": "a", "x": 1}}, set())
        == "Parameter 'shape.x' is unexpected"
    )
    assert (
        _refusal(pkg, "take-shape", {"shape": {"mode": "a"}}, {"CONFIG_A"})
        == "Parameter 'shape.x' is missing"
    )
    got = _serve(pkg, "take-shape", {"shape": {"mode": "a", "x": 1}}, {"CONFIG_A"})
    assert got["shape"].x == 1


def test_a_conditional_enum_value(pkg: SimpleNamespace) -> None:
    mode = pkg.types.Mode
    assert pkg.types.decode_shape({"mode": "b"}, "", False).mode is mode.B
    assert (
        _refusal(pkg, "take-shape", {"shape": {"mode": "b"}}, set())
        == "Parameter 'mode' does not accept value 'b'"
    )
    got = _serve(pkg, "take-shape", {"shape": {"mode": "b"}}, {"CONFIG_B"})
    assert got["shape"].mode is mode.B


@contextlib.contextmanager
def _no_warnings() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def test_decoding_what_a_hiding_server_sends_never_warns(
    pkg: SimpleNamespace,
) -> None:
    with _no_warnings():
        assert pkg.types.Info.from_wire({"model": "x", "old": 2}).old == 2


# -- the cases of QEMU's own schemas ---------------------------------------------


@pytest.fixture(scope="module")
def release_types(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[str], Any]]:
    """The types module of QEMU `release`'s complete QMP package (skips when absent)."""
    root = tmp_path_factory.mktemp("release_absent")
    with contextlib.ExitStack() as stack:
        loaded: dict[str, Any] = {}

        def types_of(release: str) -> Any:
            if release not in loaded:
                path = qemu_release(release, "qapi", "qapi-schema.json")
                if path is None:
                    pytest.skip(f"QEMU {release}'s schema is absent")
                name = "absent_qemu" + release.replace(".", "")
                files = generate_package(load_schema(str(path)), name, "qapi.json")
                package = stack.enter_context(imported_package(files, root, name))
                loaded[release] = importlib.import_module(f"{package.__name__}.types")
            return loaded[release]

        yield types_of


def test_qemu_10_cpu_model_expansion_without_the_s390x_member(
    release_types: Callable[[str], Any],
) -> None:
    """x86 QEMU 10.0 has no deprecated-props (required, under TARGET_S390X)."""
    types = release_types("10.0")
    info = types.CpuModelExpansionInfo.from_wire({"model": {"name": "max"}})
    assert info.model.name == "max" and info.deprecated_props is None
    assert info.to_wire() == {"model": {"name": "max"}}


def test_qemu_7_2_sgx_info_with_deprecated_output_hidden(
    release_types: Callable[[str], Any],
) -> None:
    """query-sgx under -compat deprecated-output=hide lacks section-size."""
    types = release_types("7.2")
    wire = {"sgx": True, "sgx1": True, "sgx2": False, "flc": True, "sections": []}
    info = types.SGXInfo.from_wire(wire)
    assert info.section_size is None and info.to_wire() == wire
    with pytest.raises(DecodeError, match="sections: missing member"):
        types.SGXInfo.from_wire({k: v for k, v in wire.items() if k != "sections"})
