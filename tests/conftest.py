"""Fixtures of the whole suite, built on qapigen_testing, and the rule that CI never
skips interop; every package a test generates is compiled whole."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from qapigen.generate import VERIFY_VARIABLE
from qapigen_testing.daemons import (
    QEMU_GA,
    QEMU_IMG,
    QEMU_IO,
    STORAGE_DAEMON,
    find_program,
)
from qapigen_testing.qemu_fixtures import QEMU_BINARY, QemuLauncher
from qapigen_testing.run_folder import make_run_folder, remove_run_folder

# Every package a test generates is compiled whole in memory before it is returned or
# written (qapigen/generate.py: generate itself relies on construction and checks only
# what schema input could break). Set in the environment so that the `qapigen`
# processes tests start do it too.
os.environ[VERIFY_VARIABLE] = "1"

# The folder the run's processes share (qapigen_testing.run_folder); made before
# pytest-xdist starts its workers, which inherit it.
_RUN_FOLDER = make_run_folder()


def pytest_unconfigure(config: pytest.Config) -> None:
    if _RUN_FOLDER is not None:
        remove_run_folder(_RUN_FOLDER)


# marker -> the programs its tests run, and the Debian package that has them
PEERS = {
    "qemu": ((QEMU_BINARY,), "qemu-system-x86"),
    "guest_agent": ((QEMU_GA,), "qemu-guest-agent"),
    "storage_daemon": (
        (STORAGE_DAEMON, QEMU_IMG, QEMU_IO),
        "qemu-system-common qemu-utils",
    ),
}


def pytest_runtest_setup(item: pytest.Item) -> None:
    # Interop tests need the real peer. On a developer machine without one they skip
    # with a reason; in CI a missing peer is a broken setup, so they fail instead of
    # hiding.
    for marker, (programs, package) in PEERS.items():
        if marker not in item.keywords:
            continue
        missing = [p for p in programs if find_program(p) is None]
        if not missing:
            continue
        if os.environ.get("CI"):
            pytest.fail(
                f"{', '.join(missing)} missing: CI must install it (scripts/setup)"
            )
        pytest.skip(f"{', '.join(missing)} not installed (apt-get install {package})")


@pytest.fixture
def qemu_launcher() -> Iterator[QemuLauncher]:
    """A launcher whose QEMU processes are stopped when the test ends."""
    if shutil.which(QEMU_BINARY) is None:
        pytest.skip(f"{QEMU_BINARY} is not installed")
    with QemuLauncher() as launcher:
        yield launcher
