"""Time decoding + validating a completed QEMU 7.2 query-migrate reply.

Run: python bench/bench_decode.py [SECONDS]   (needs pydantic v2: pip install pydantic)

The reply (bench/data/query-migrate-qemu-7.2-completed.json) was recorded from a real
migration between two `qemu-system-x86_64 -M pc -accel tcg -m 64` 7.2 processes, with
xbzrle on. Each contender turns the reply line, as bytes the way a socket delivers it, into
checked Python values:

- `json.loads` alone: the standard library's parser, the floor of any decoder built on it;
- the typed clients' own path: the reply line's bytes parsed by the runtime's
  `received_json.decode_line` (orjson when installed, as it is with qapigen), then the
  generated `MigrationInfo.from_wire`, with the package generated from QEMU 7.2's schema
  (the reply's own) and with the bundled 5.0-era package (whose MigrationInfo keeps the
  members 7.2 added in `extra`); and the same with `json.loads` in place of orjson, for
  users without it;
- pydantic v2 on hand-written models equivalent to QEMU 7.2's MigrationInfo (strict
  JSON types, integer ranges, required members, dashed names, unknown members kept),
  from the text (`model_validate_json`, JSON parsed in Rust) and from `json.loads`'
  output (`model_validate`).

It prints the time per reply (best of 7 batches) and the ratios; the target is a typed decode at
least as fast as pydantic v2. Correctness is checked first: every contender must give
back the reply it read.
"""

from __future__ import annotations

import contextlib
import enum
import importlib
import json
import sys
import tempfile
import timeit
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from qapigen.frontend import load_schema
from qapigen.generate import generate_package
from qapigen_migration import types as bundled_types
from qapigen_runtime.qmp.received_json import decode_line, using_fast_parser
from qapigen_testing.generated_packages import imported_package

HERE = Path(__file__).resolve().parent
REPLY = HERE / "data" / "query-migrate-qemu-7.2-completed.json"
SHARED = HERE.parents[1] / "shared"
QEMU72_SCHEMA = SHARED / "qemu" / "7.2" / "qapi" / "qapi-schema.json"


# ---------------------------------------------------------------- pydantic models
# QEMU 7.2's MigrationInfo and what it contains, written by hand the way a user of
# pydantic would: dashed wire names through an alias generator, strict JSON types,
# QAPI's integer ranges as bounds, and unknown members kept (`extra="allow"`), which
# is what the generated client-side decoder does too.

Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
UInt16 = Annotated[int, Field(ge=0, le=2**16 - 1)]
UInt32 = Annotated[int, Field(ge=0, le=2**32 - 1)]
UInt64 = Annotated[int, Field(ge=0, le=2**64 - 1)]


def dashed(name: str) -> str:
    return name.replace("_", "-")


class QAPIModel(BaseModel):
    model_config = ConfigDict(
        strict=True, extra="allow", alias_generator=dashed, populate_by_name=True
    )


# the enum style pydantic users write
class MigrationStatus(str, enum.Enum):  # noqa: UP042
    NONE = "none"
    SETUP = "setup"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    ACTIVE = "active"
    POSTCOPY_ACTIVE = "postcopy-active"
    POSTCOPY_PAUSED = "postcopy-paused"
    POSTCOPY_RECOVER = "postcopy-recover"
    COMPLETED = "completed"
    FAILED = "failed"
    COLO = "colo"
    PRE_SWITCHOVER = "pre-switchover"
    DEVICE = "device"
    WAIT_UNPLUG = "wait-unplug"


class MigrationStats(QAPIModel):
    transferred: Int64
    remaining: Int64
    total: Int64
    duplicate: Int64
    skipped: Int64
    normal: Int64
    normal_bytes: Int64
    dirty_pages_rate: Int64
    mbps: float
    dirty_sync_count: Int64
    postcopy_requests: Int64
    page_size: Int64
    multifd_bytes: UInt64
    pages_per_second: UInt64
    precopy_bytes: UInt64
    downtime_bytes: UInt64
    postcopy_bytes: UInt64
    dirty_sync_missed_zero_copy: UInt64


class VfioStats(QAPIModel):
    transferred: Int64


class XBZRLECacheStats(QAPIModel):
    cache_size: UInt64
    bytes: Int64
    pages: Int64
    cache_miss: Int64
    cache_miss_rate: float
    encoding_rate: float
    overflow: Int64


class CompressionStats(QAPIModel):
    pages: Int64
    busy: Int64
    busy_rate: float
    compressed_size: Int64
    compression_rate: float


class InetSocketAddress(QAPIModel):
    type: Literal["inet"]
    host: str
    port: str
    numeric: bool | None = None
    to: UInt16 | None = None
    ipv4: bool | None = None
    ipv6: bool | None = None
    keep_alive: bool | None = None
    mptcp: bool | None = None


class UnixSocketAddress(QAPIModel):
    type: Literal["unix"]
    path: str
    abstract: bool | None = None
    tight: bool | None = None


class VsockSocketAddress(QAPIModel):
    type: Literal["vsock"]
    cid: str
    port: str


class FdSocketAddress(QAPIModel):
    type: Literal["fd"]
    str_: str = Field(alias="str")


SocketAddress = Annotated[
    Union[  # noqa: UP007 - pydantic's discriminated-union spelling, as users write it
        InetSocketAddress, UnixSocketAddress, VsockSocketAddress, FdSocketAddress
    ],
    Field(discriminator="type"),
]


class MigrationInfo(QAPIModel):
    # python-mode strict validation wants an enum instance: let the value set decide
    status: Annotated[MigrationStatus, Field(strict=False)] | None = None
    ram: MigrationStats | None = None
    disk: MigrationStats | None = None
    vfio: VfioStats | None = None
    xbzrle_cache: XBZRLECacheStats | None = None
    total_time: Int64 | None = None
    expected_downtime: Int64 | None = None
    downtime: Int64 | None = None
    setup_time: Int64 | None = None
    cpu_throttle_percentage: Int64 | None = None
    error_desc: str | None = None
    blocked_reasons: list[str] | None = None
    postcopy_blocktime: UInt32 | None = None
    postcopy_vcpu_blocktime: list[UInt32] | None = None
    compression: CompressionStats | None = None
    socket_address: list[SocketAddress] | None = None


class MigrationReply(QAPIModel):
    """The QMP reply message itself, so model_validate_json reads the whole text."""

    return_: MigrationInfo = Field(alias="return")


# ---------------------------------------------------------------- contenders


@contextlib.contextmanager
def imported_qemu72_types(folder: Path) -> Iterator[ModuleType | None]:
    """The types module generated from QEMU 7.2's schema, or None without it."""
    if not QEMU72_SCHEMA.exists():
        yield None
        return
    package = "qapigen_bench_qemu72"
    schema = load_schema(str(QEMU72_SCHEMA))
    files = generate_package(schema, package=package, schema_name="qapi-schema.json")
    with imported_package(files, folder, package):
        yield importlib.import_module(f"{package}.types")


def typed_decoder(types: ModuleType) -> Callable[[bytes], object]:
    """The typed clients' path: the line's bytes, the runtime's parser, from_wire."""
    from_wire = types.MigrationInfo.from_wire

    def decode(line: bytes) -> object:
        reply = decode_line(line)
        assert isinstance(reply, dict)
        return from_wire(reply["return"])

    return decode


def typed_decoder_stdlib(types: ModuleType) -> Callable[[bytes], object]:
    """The generated decoder behind the standard library's parser."""
    from_wire = types.MigrationInfo.from_wire

    def decode(line: bytes) -> object:
        return from_wire(json.loads(line)["return"])

    return decode


def pydantic_from_text(line: bytes) -> object:
    return MigrationReply.model_validate_json(line).return_


def pydantic_from_json(line: bytes) -> object:
    return MigrationInfo.model_validate(json.loads(line)["return"])


def same_numbers(left: object, right: object) -> bool:
    """Equal wire values; a JSON integer read as a 'number' (a float) still counts."""
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(
            same_numbers(value, right[key]) for key, value in left.items()
        )
    if isinstance(left, bool) or isinstance(right, bool):
        return left is right
    return left == right


def check_results(line: bytes, decoders: dict[str, Callable[[bytes], object]]) -> None:
    """Every contender reads the reply fully: encoding its result gives it back."""
    reply = json.loads(line)["return"]
    for label, decode in decoders.items():
        result = decode(line)
        if isinstance(result, BaseModel):
            back = result.model_dump(by_alias=True, exclude_unset=True, mode="json")
        elif isinstance(result, dict):
            back = result
        else:
            back = getattr(result, "to_wire")()
        if not same_numbers(back, reply):
            raise SystemExit(f"{label} does not give the reply back: {back}")


def time_per_call(
    decode: Callable[[bytes], object], line: bytes, seconds: float
) -> float:
    """Seconds per call: the best of 7 batches of about `seconds` / 7 each (the
    machine is shared; the fastest batch is the one least disturbed)."""
    timer = timeit.Timer(lambda: decode(line))
    count, elapsed = timer.autorange()
    number = max(1, int(count * (seconds / 7) / max(elapsed, 1e-9)))
    batches = timer.repeat(repeat=7, number=number)
    return min(batches) / number


def _verdict(typed: float, pydantic: float) -> str:
    return "met" if typed <= pydantic else f"MISSED ({typed / pydantic:.2f}x slower)"


def main() -> int:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    line = REPLY.read_bytes().strip()
    with (
        tempfile.TemporaryDirectory() as folder,
        imported_qemu72_types(Path(folder)) as qemu72_types,
    ):
        decoders: dict[str, Callable[[bytes], object]] = {
            "json.loads alone": lambda raw: json.loads(raw)["return"],
        }
        if qemu72_types is None:
            print(f"QEMU 7.2 typed decode: skipped, {QEMU72_SCHEMA} is absent")
        else:
            decoders["typed (QEMU 7.2 package)"] = typed_decoder(qemu72_types)
        decoders["typed (bundled package)"] = typed_decoder(bundled_types)
        if qemu72_types is not None:
            decoders["typed, stdlib json (QEMU 7.2 package)"] = typed_decoder_stdlib(
                qemu72_types
            )
        decoders["pydantic model_validate_json"] = pydantic_from_text
        decoders["json.loads + pydantic model_validate"] = pydantic_from_json
        check_results(line, decoders)
        parser = "orjson" if using_fast_parser() else "the standard library (no orjson)"
        print(
            f"decode + validate one completed QEMU 7.2 query-migrate reply"
            f" ({len(line)} bytes), best batch, per call; typed clients parse with"
            f" {parser}:"
        )
        times = {
            label: time_per_call(decode, line, seconds / len(decoders))
            for label, decode in decoders.items()
        }
    floor = times["json.loads alone"]
    width = max(len(label) for label in times)
    for label, elapsed in times.items():
        print(
            f"  {label:<{width}}  {elapsed * 1e6:8.2f} us"
            f"  ({elapsed / floor:5.2f}x json.loads)"
        )
    typed_label = (
        "typed (QEMU 7.2 package)"
        if "typed (QEMU 7.2 package)" in times
        else "typed (bundled package)"
    )
    typed = times[typed_label]
    print(f"ratios for {typed_label} (below 1.00: typed is faster):")
    for label in (
        "pydantic model_validate_json",
        "json.loads + pydantic model_validate",
    ):
        print(f"  typed / {label}: {typed / times[label]:.2f}")
    stdlib_label = "typed, stdlib json (QEMU 7.2 package)"
    if stdlib_label in times:
        decode_only = (times[stdlib_label] - floor) / (
            times["json.loads + pydantic model_validate"] - floor
        )
        print(
            f"  validation only (typed from_wire / pydantic model_validate, both after"
            f" json.loads, json.loads taken out): {decode_only:.2f}"
        )
    like_for_like = times["json.loads + pydantic model_validate"]
    print("target: typed decode at least as fast as pydantic v2")
    print(f"  from the same json.loads output: {_verdict(typed, like_for_like)}")
    from_text = times["pydantic model_validate_json"]
    print(
        f"  from the text, against pydantic's own parser: {_verdict(typed, from_text)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
