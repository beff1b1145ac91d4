"""migrate-set-parameters, bad and edge requests: qapigen-vm answers each exactly as a
real QEMU 7.2 does.

The requests are made from the member types of the VM's own schema (which
`test_vm_schema_facts` holds to QEMU 7.2's): for each member, a value of every wrong
JSON kind, and integers at and past each edge of its type (negative ones, which QEMU's
unsigned reader takes as two's complement, and ones past 64 bits, which its JSON parser
reads as doubles); then requests with several faults, where the order in which QEMU
reads the members decides which one is reported. Both peers get the same sequence on
the wire; a request either side accepts changes its parameters, so the parameters are
compared after each accepted one as well.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator

import pytest

from qapigen_testing.peers import (
    MACHINE_ARGS,
    Peer,
    PeerKind,
    require_peers,
    site,
)
from qapigen_testing.qmp_fixtures import RawQMP
from qapigen_vm_qmp.introspection import schema_info

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(240)]

_INTEGERS = frozenset({"uint8", "uint32", "uint64", "size"})
_UNSIGNED_MAX = {"uint8": 2**8 - 1, "uint32": 2**32 - 1, "uint64": 2**64 - 1}
_NOT_NUMBERS: tuple[object, ...] = (None, "1", True, {}, [])


def _members(type_name: str) -> list[tuple[str, str]]:
    """(name, type) of the members of object `type_name` in the VM's schema, in order."""
    (entry,) = [e for e in schema_info() if e["name"] == type_name]
    members = entry["members"]
    assert isinstance(members, list)
    return [(m["name"], m["type"]) for m in members]


def _enum_values(type_name: str) -> list[str]:
    (entry,) = [e for e in schema_info() if e["name"] == type_name]
    values = entry["values"]
    assert isinstance(values, list)
    return values


def _bad_values(type_name: str) -> tuple[object, ...]:
    """Values to try for a member of `type_name`: wrong kinds and edges."""
    if type_name in _INTEGERS:
        edges: list[object] = [1.5, -1, -(2**63), -(2**63) - 1, 2**63, 2**64 - 1, 2**64]
        top = _UNSIGNED_MAX.get(type_name)
        if top is not None and top < 2**64 - 1:
            edges += [top, top + 1]
        return (*_NOT_NUMBERS, *edges)
    if type_name == "bool":
        return (None, 1, 0, "true", {}, [])
    if type_name == "StrOrNull":
        return (5, True, 1.5, {}, [], "", None)
    values = _enum_values(type_name)  # an enum: values it lacks, wrong kinds
    return ("bogus", "", values[-1].upper(), 1, None, True, [])


def bad_requests() -> Iterator[dict[str, object]]:
    members = _members("MigrateSetParameters")
    for name, type_name in members:
        for value in _bad_values(type_name):
            yield {name: value}
    # Members QEMU does not know, spelled like ones it does.
    for unknown in ("bogus", "compress_level", "Compress-Level", "block-bitmap"):
        yield {unknown: 1}
    # Several faults: QEMU reads the members in schema order, whatever order the
    # request has, and reports unknown members only after all known ones.
    for (first, _), (second, _) in itertools.pairwise(members):
        yield {second: "x", first: "x"}
    yield {"bogus": 1, members[-1][0]: "x"}
    yield {name: "x" for name, _ in reversed(members)}
    # Values QEMU's checks refuse, several at once: the first check in its order wins.
    yield {"announce-step": 0, "compress-level": 10, "multifd-channels": 0}
    yield {"max-cpu-throttle": 10, "cpu-throttle-initial": 50}


Step = tuple[dict[str, object], dict[str, object], list[dict[str, object]] | None]
"""A request's arguments, its reply, and the parameters after it if it was accepted."""


def transcript(kind: PeerKind) -> list[Step]:
    """Every request with its reply, and the parameters after each accepted one."""
    require_peers(kind)
    with site() as where:
        peer = Peer(kind, "peer", where, MACHINE_ARGS)
        try:
            peer.wait_ready()
            qmp = RawQMP(peer.qmp_path)
            try:
                qmp.negotiate()
                return list(_exchanges(qmp))
            finally:
                qmp.close()
        finally:
            peer.stop()


def _exchanges(qmp: RawQMP) -> Iterator[Step]:
    query = json.dumps({"execute": "query-migrate-parameters"}).encode()
    for arguments in bad_requests():
        request = {"execute": "migrate-set-parameters", "arguments": arguments}
        (reply,) = qmp.exchange(json.dumps(request).encode())
        yield (arguments, reply, None if "error" in reply else qmp.exchange(query))


def test_the_requests_cover_every_member_and_fault() -> None:
    requests = list(bad_requests())
    assert len(requests) > 300
    named = {key for request in requests for key in request}
    assert {name for name, _ in _members("MigrateSetParameters")} < named


def test_vm_answers_bad_parameters_as_qemu_72() -> None:
    expected = transcript(PeerKind.QEMU)
    actual = transcript(PeerKind.VM)
    assert len(actual) == len(expected)
    refused = sum(1 for _, reply, _ in expected if "error" in reply)
    assert refused > 250  # the sequence mostly exercises refusals
    differences = [
        f"{json.dumps(mine[0])}:\n  qemu 7.2:   {theirs[1:]}\n  qapigen-vm: {mine[1:]}"
        for mine, theirs in zip(actual, expected, strict=True)
        if mine != theirs
    ]
    assert not differences, "\n".join(differences)
