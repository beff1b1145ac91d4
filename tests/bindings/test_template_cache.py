"""Compiled templates are kept between runs in a per-user folder (template_cache.py):
reused when nothing they depend on changed, never a cause of different output, and
never a cause of failure (a folder that cannot be used means compiling as before)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import jinja2
import pytest

from qapigen import render, template_cache
from qapigen.frontend import schema_from_parsed
from qapigen.generate import generate_package
from qapigen.level import Level
from qapigen.parser import parse_text

SCHEMA = """
{ 'enum': 'Colour', 'data': [ 'red', 'green' ] }
{ 'struct': 'Paint', 'data': { 'colour': 'Colour', '*coats': 'int' } }
{ 'union': 'Job', 'base': { 'kind': 'Colour' }, 'discriminator': 'kind',
  'data': { 'red': 'Paint' } }
{ 'command': 'paint', 'data': { 'job': 'Job' }, 'returns': 'Paint' }
{ 'event': 'PAINTED', 'data': { 'paint': 'Paint' } }
"""


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A cache home of the test's own, bytecode writing on, and a fresh environment
    before and after (render.environment() is made once per process)."""
    home = tmp_path / "cache-home"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    render.environment.cache_clear()
    yield home
    render.environment.cache_clear()


def fresh_environment() -> jinja2.Environment:
    """The environment a new run makes."""
    render.environment.cache_clear()
    return render.environment()


def load_every_template(env: jinja2.Environment) -> None:
    for name in env.list_templates():
        env.get_template(name)


def generated() -> dict[str, str]:
    parsed = parse_text(SCHEMA, "paint.json", Level.PERMISSIVE)
    schema = schema_from_parsed(parsed, "paint.json", Level.PERMISSIVE)
    return generate_package(schema, "paint", "paint.json")


def cache_files(home: Path) -> list[Path]:
    return sorted((home / "qapigen" / "templates").glob("*/*.cache"))


def test_a_later_run_loads_every_template_compiled(
    cache_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_every_template(fresh_environment())
    templates = fresh_environment().list_templates()
    assert len(cache_files(cache_home)) == len(templates)

    def no_compiling(*args: object, **kwargs: object) -> None:
        raise AssertionError("compiled a template the cache holds")

    monkeypatch.setattr(jinja2.Environment, "compile", no_compiling)
    load_every_template(fresh_environment())


def test_output_is_the_same_compiled_or_loaded(
    cache_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    fresh_environment()
    compiled = generated()  # no cache folder yet, and none may be made
    assert not cache_home.exists()
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    fresh_environment()
    generated()  # fills the cache
    fresh_environment()
    assert cache_files(cache_home)
    assert generated() == compiled  # from the cache


def test_a_changed_generator_gets_a_folder_of_its_own(
    cache_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = fresh_environment()
    before = template_cache.cache_key(env)
    monkeypatch.setattr(template_cache, "generator_digest", lambda: "edited")
    assert template_cache.cache_key(env) != before
    env.trim_blocks = False
    assert template_cache.cache_key(env) != before


def test_damaged_cache_files_are_compiled_again(cache_home: Path) -> None:
    fresh_environment()
    expected = generated()
    for path in cache_files(cache_home):
        path.write_bytes(b"not bytecode")
    fresh_environment()
    assert generated() == expected


def test_a_cache_that_cannot_be_written_fails_soft(
    cache_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(self: object, bucket: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(jinja2.FileSystemBytecodeCache, "dump_bytecode", full_disk)
    env = fresh_environment()
    assert env.bytecode_cache is not None
    load_every_template(env)
    assert not cache_files(cache_home)


def test_no_folder_means_no_cache(cache_home: Path) -> None:
    cache_home.parent.mkdir(exist_ok=True)
    cache_home.write_text("a file where the cache folder would go\n")
    env = fresh_environment()
    assert env.bytecode_cache is None
    load_every_template(env)


def test_a_folder_others_can_write_into_is_not_used(cache_home: Path) -> None:
    env = fresh_environment()
    assert env.bytecode_cache is not None
    root = template_cache.cache_root()
    os.chmod(root, 0o777)
    env = fresh_environment()
    assert env.bytecode_cache is None
    load_every_template(env)


def test_only_the_most_recent_folders_are_kept(cache_home: Path) -> None:
    root = template_cache.cache_root()
    count = template_cache.KEPT_FOLDERS + 3
    for index in range(count):
        old = root / f"old{index:02}"
        old.mkdir(parents=True)
        os.utime(old, (1000.0 + index, 1000.0 + index))
    env = fresh_environment()
    assert env.bytecode_cache is not None
    kept = sorted(path.name for path in root.iterdir())
    assert len(kept) == template_cache.KEPT_FOLDERS
    assert template_cache.cache_key(env) in kept
    newest = [f"old{index:02}" for index in range(count)][-(len(kept) - 1) :]
    assert sorted(newest + [template_cache.cache_key(env)]) == kept
