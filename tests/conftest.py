"""Fixtures of the whole suite, built on qapigen_testing, and the rule that CI never
skips interop."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from qapigen_testing.qemu_fixtures import QEMU_BINARY, QemuLauncher


def pytest_runtest_setup(item: pytest.Item) -> None:
    # Interop tests need a real QEMU. On a developer machine without one they skip with a
    # reason; in CI a missing QEMU is a broken setup, so they fail instead of hiding.
    if "qemu" not in item.keywords or shutil.which("qemu-system-x86_64"):
        return
    if os.environ.get("CI"):
        pytest.fail("qemu-system-x86_64 is missing: CI must install it (scripts/setup)")
    pytest.skip("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)")


@pytest.fixture
def qemu_launcher() -> Iterator[QemuLauncher]:
    """A launcher whose QEMU processes are stopped when the test ends."""
    if shutil.which(QEMU_BINARY) is None:
        pytest.skip(f"{QEMU_BINARY} is not installed")
    with QemuLauncher() as launcher:
        yield launcher
