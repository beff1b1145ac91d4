"""QEMU's own schema test corpora (5.2, 7.2 and 10.0), case by case, at each case's
level, and QEMU's complete schemas at the default level.

For every `X.json` of a corpus (`../shared/qemu/<release>/qapi-schema-tests` for 5.2
and 7.2, the cache `scripts/fetch-qemu-sources` fills for 10.0):
- the verdict agrees with QEMU: rejected exactly when `X.err` is non-empty;
- a rejection names the same file:line as QEMU's error line in `X.err`;
- an accepted schema's `dump-ir --format qemu-test` equals `X.out`;
- the default level accepts every schema the release accepts, to the same IR.
Every complete schema of those releases (QMP, guest agent, storage daemon) checks
at the default level, with no error.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from qapigen.dump import dump_qemu_test
from qapigen.frontend import load_schema
from qapigen.level import Level
from qapigen.rules import report_warnings
from qapigen.source import QAPIError
from qapigen_testing.paths import release_root

RELEASES = {"5.2": Level.V5_2, "7.2": Level.V7_2, "10.0": Level.V10_0}
COMPLETE_SCHEMAS = [
    "qapi/qapi-schema.json",
    "qga/qapi-schema.json",
    "storage-daemon/qapi/qapi-schema.json",
]

# `file:line[:col]: message`, skipping context lines ("x.json: In struct 'S':")
# and include chains ("In file included from x.json:1:")
_ERROR_LINE = re.compile(r"^(?!In file included from)(\S+?):(\d+)(?::\d+)?: ")
# where the corpus lives in QEMU's tree: one 10.0 .err names its file from there
_CORPUS_IN_QEMU = "tests/qapi-schema/"


def _absent(release: str) -> str:
    where = "run scripts/fetch-qemu-sources" if release == "10.0" else "../shared"
    return f"QEMU {release}'s schemas are absent ({where})"


def _corpus(release: str) -> Path:
    return release_root(release) / "qapi-schema-tests"


def _cases() -> list[object]:
    cases: list[object] = []
    for release in RELEASES:
        corpus = _corpus(release)
        if not corpus.is_dir():
            cases.append(
                pytest.param(
                    release,
                    "",
                    id=f"{release}/absent",
                    marks=pytest.mark.skip(reason=_absent(release)),
                )
            )
            continue
        for err in sorted(corpus.glob("*.err")):
            cases.append(pytest.param(release, err.stem, id=f"{release}/{err.stem}"))
    return cases


def expected_error_location(err_text: str) -> tuple[str, int] | None:
    """The file and line QEMU reports the error at (its first located line)."""
    for line in err_text.splitlines():
        match = _ERROR_LINE.match(line)
        if match:
            fname = match.group(1).removeprefix(_CORPUS_IN_QEMU)
            return os.path.normpath(fname), int(match.group(2))
    return None


def test_error_location_of_a_case_named_from_qemus_tree() -> None:
    err = (
        "tests/qapi-schema/x.json: In event 'E':\n"
        "tests/qapi-schema/x.json:1: message\n"
    )
    assert expected_error_location(err) == ("x.json", 1)
    assert expected_error_location("include/a.json:3:7: m\n") == ("include/a.json", 3)
    assert expected_error_location("no location here\n") is None


@pytest.mark.parametrize(("release", "case"), _cases())
def test_qemu_case(release: str, case: str) -> None:
    corpus = _corpus(release)
    level = RELEASES[release]
    err_text = (corpus / f"{case}.err").read_text()
    out_path = corpus / f"{case}.out"
    schema_file = corpus / f"{case}.json"
    expected = expected_error_location(err_text)
    if not schema_file.exists() and expected is not None:
        pytest.skip(f"{schema_file.name} is missing from the corpus copy")
    try:
        schema = load_schema(str(schema_file), level)
    except QAPIError as exc:
        assert err_text.strip(), f"rejected a schema QEMU {release} accepts: {exc}"
        if expected is None:
            # an error without location (e.g. the schema file cannot be read)
            assert exc.info is None, str(exc)
            return
        assert exc.info is not None, f"error without location: {exc}"
        where = (os.path.relpath(exc.info.fname, corpus), exc.info.line)
        assert where == expected, f"QEMU: {err_text.strip()}\nqapigen: {exc}"
        return
    assert not err_text.strip(), f"accepted a schema QEMU {release} rejects: {err_text}"
    assert dump_qemu_test(schema, level) == out_path.read_text()


def _entity_part(dump: str) -> str:
    """The dump without the doc comments (whose labels differ between forms)."""
    head, _, _ = dump.partition("\ndoc ")
    return head


@pytest.mark.parametrize(("release", "case"), _cases())
def test_permissive_level_accepts_what_qemu_accepts(release: str, case: str) -> None:
    """The default level takes every schema a supported release takes, and resolves
    it to the same IR (printed in the newest form)."""
    corpus = _corpus(release)
    if (corpus / f"{case}.err").read_text().strip():
        return
    schema = load_schema(str(corpus / f"{case}.json"), Level.PERMISSIVE)
    expected = (corpus / f"{case}.out").read_text()
    if release == "5.2":
        # the newest form: built-in module name, a lone condition as written
        expected = expected.replace("module None\n", "module ./builtin\n", 1)
        expected = re.sub(r"(?m)^( *if )\['([^']*)'\]$", r"\1\2", expected)
    # QEMU 9.1+ define QType without an explicit prefix
    expected = expected.replace("enum QType\n    prefix QTYPE\n", "enum QType\n", 1)
    assert _entity_part(dump_qemu_test(schema)) == _entity_part(expected)


@pytest.mark.parametrize("schema", COMPLETE_SCHEMAS)
@pytest.mark.parametrize("release", list(RELEASES))
def test_complete_schema_checks_without_a_version(release: str, schema: str) -> None:
    """Every complete schema of a supported release checks at the default level;
    what only some releases reject is a warning, shown one line per rule."""
    path = release_root(release) / schema
    if not path.exists():
        pytest.skip(_absent(release))
    checked = load_schema(str(path))
    assert len(checked.entities) > 50
    grouped = report_warnings(checked.warnings)
    rules = {w.rule.name for w in checked.warnings}
    assert len(grouped) == len(rules) <= 20
    # its own release's rules pass too (the schemas are QEMU's, after all)
    load_schema(str(path), RELEASES[release])
