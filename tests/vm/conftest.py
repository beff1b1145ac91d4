"""Fixtures the reference VM's tests share, built on qapigen_testing."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from qapigen_testing.pki import Pki
from qapigen_testing.vm_engine import Factory


@pytest.fixture
def vms(tmp_path: Path) -> Iterator[Factory]:
    """Engines in this process, closed when the test ends."""
    factory = Factory(tmp_path)
    yield factory
    factory.close()


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """Test certificates (read-only for the tests), made once per run."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make test certificates")
    return Pki(tmp_path_factory.mktemp("pki"))
