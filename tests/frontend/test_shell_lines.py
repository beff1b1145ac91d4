"""The shell's line reading, validation and completion, on QEMU 7.2's saved answer
(no server needed): what a user types becomes the request QEMU expects, or a located
error before anything is sent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qapigen.shell.catalog import Catalog
from qapigen.shell.command_line import Request, ShellError, parse_line, split_words
from qapigen.shell.complete import completions
from qapigen.shell.validate import check_request

REPLY = Path(__file__).parent / "introspection_replies" / "qemu-7.2.22.json"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.from_introspection(json.loads(REPLY.read_text()), REPLY.name)


def request(catalog: Catalog, line: str) -> Request:
    parsed = parse_line(line, catalog)
    check_request(parsed, catalog)
    return parsed


def test_values_are_typed_by_the_schema(catalog: Catalog) -> None:
    parsed = request(catalog, "migrate-set-parameters downtime-limit=300 tls-creds=123")
    assert parsed.arguments == {"downtime-limit": 300, "tls-creds": "123"}
    parsed = request(catalog, "migrate-set-parameters tls-creds=null")
    assert parsed.arguments == {"tls-creds": None}  # StrOrNull takes null
    parsed = request(catalog, "migrate-set-capabilities"
                     ' capabilities=[{"capability": "xbzrle", "state": true}]')  # fmt: skip
    assert parsed.arguments == {
        "capabilities": [{"capability": "xbzrle", "state": True}]
    }
    assert request(catalog, "query-status").arguments == {}
    assert request(catalog, "stop").command == "stop"
    parsed = request(catalog, "human-monitor-command command-line='info status'")
    assert parsed.arguments == {"command-line": "info status"}


def test_nested_members_and_json_requests(catalog: Catalog) -> None:
    parsed = request(
        catalog, "blockdev-add driver=null-co node-name=n0 size=1048576 read-only=on"
    )
    assert parsed.arguments == {
        "driver": "null-co",
        "node-name": "n0",
        "size": 1048576,
        "read-only": True,
    }
    parsed = request(catalog, '{"execute": "query-name", "arguments": {}}')
    assert (parsed.command, parsed.arguments) == ("query-name", {})


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "migrate-set-parameters downtime-limit=abc",
            "error:24: migrate-set-parameters: downtime-limit: expected int, got str",
        ),
        (
            "migrate-set-parameters bogus=1",
            "error:24: migrate-set-parameters: bogus: unexpected member",
        ),
        ("migrate uri", "error:9: expected KEY=VALUE, got 'uri'"),
        ("migrate", "error: migrate: uri: missing member"),
        ("query-bogus", "error: unknown command 'query-bogus' (try: help)"),
        ("query-status x=1", "error:14: query-status: x: unexpected member"),
        (
            "migrate-set-capabilities capabilities="
            '[{"capability": "warp", "state": true}]',
            "error:26: migrate-set-capabilities: capabilities[0].capability:"
            " 'warp' is not a value of MigrateCapabilitiesInfoCapability",
        ),
        ("migrate uri='tcp:x", "error:13: unterminated ' quote"),
        ("migrate a=1 a=2", "error:13: a is given twice"),
    ],
)
def test_bad_lines_are_refused_before_sending(
    catalog: Catalog, line: str, message: str
) -> None:
    with pytest.raises(ShellError) as raised:
        request(catalog, line)
    assert raised.value.located("error") == message


def test_words_keep_json_and_quotes_whole() -> None:
    words = split_words("""a  b='x y' c=[{"k": "v w"}] d="q" """)
    assert [(w.text, w.column) for w in words] == [
        ("a", 1),
        ("b=x y", 4),
        ('c=[{"k": "v w"}]', 12),
        ("d=q", 29),
    ]


def test_completion_of_commands_arguments_and_values(catalog: Catalog) -> None:
    assert completions(catalog, "query-sta") == [
        "query-stats",
        "query-stats-schemas",
        "query-status",
    ]
    assert completions(catalog, "he") == ["help"]
    assert completions(catalog, "help query-mig") == [
        "query-migrate",
        "query-migrate-capabilities",
        "query-migrate-parameters",
    ]
    assert completions(catalog, "migrate-set-parameters downtime") == [
        "downtime-limit="
    ]
    assert "max-bandwidth=" in completions(catalog, "migrate-set-parameters ")
    given = completions(catalog, "migrate-set-parameters downtime-limit=1 ")
    assert "downtime-limit=" not in given and "max-bandwidth=" in given
    assert completions(catalog, "migrate-set-parameters multifd-compression=z") == [
        "multifd-compression=zlib",
        "multifd-compression=zstd",
    ]
    assert completions(catalog, "migrate detach=") == [
        "detach=false",
        "detach=true",
    ]
    assert completions(catalog, "query-status ") == []


def test_help_shows_the_signature_without_a_package(catalog: Catalog) -> None:
    text = catalog.help("migrate")
    assert text.startswith("migrate uri=str [blk=bool] [inc=bool] [detach=bool]")
    assert catalog.help("query-status") == "query-status -> StatusInfo"
    assert "features: deprecated" in catalog.help("drive-backup")


def test_device_add_takes_the_properties_of_the_device(catalog: Catalog) -> None:
    # 'gen': false in QEMU's schema: properties beyond driver, bus and id go through
    parsed = request(catalog, "device_add driver=virtio-rng-pci id=rng0 max-bytes=1024")
    assert parsed.arguments == {
        "driver": "virtio-rng-pci",
        "id": "rng0",
        "max-bytes": 1024,  # not in the schema: read as JSON
    }
    with pytest.raises(ShellError) as raised:
        request(catalog, "device_add id=rng0")
    assert raised.value.message == "device_add: driver: missing member"
