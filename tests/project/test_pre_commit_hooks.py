"""The hooks `.pre-commit-hooks.yaml` offers other repositories, run by pre-commit itself.

`pre-commit try-repo` installs this checkout (its working tree as it is) the way a
user's `.pre-commit-config.yaml` entry would, into an environment of its own, and runs
the hooks in a scratch repository of a user: `qapigen-check` fails with the diff and the
fixing command while a generated package is stale and passes once it is current;
`qapigen-generate` brings it up to date, which pre-commit reports as files modified.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from qapigen_testing.paths import REPO

SCHEMA = "{ 'enum': 'Colour', 'data': [ 'red', 'green' ] }\n"
NEW_COMMAND = "{ 'command': 'get-colour', 'returns': 'Colour' }\n"
PYPROJECT = '[tool.qapigen]\nschema = "schema/colours.json"\noutput = "colours"\n'


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def try_repo(user: Path, home: Path, *hook: str) -> subprocess.CompletedProcess[str]:
    environment = dict(os.environ, PRE_COMMIT_HOME=str(home), NO_COLOR="1")
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", "try-repo", str(REPO), *hook]
        + ["--all-files", "--color", "never"],
        cwd=user,
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.mark.slow
def test_the_offered_hooks_keep_a_users_package_current(tmp_path: Path) -> None:
    if not (REPO / ".git").exists():
        pytest.skip("pre-commit installs hooks from a git repository; this is none")
    user = tmp_path / "user"
    (user / "schema").mkdir(parents=True)
    (user / "schema" / "colours.json").write_text(SCHEMA)
    (user / "pyproject.toml").write_text(PYPROJECT)
    git(user, "init", "-q")
    git(user, "-c", "user.name=u", "-c", "user.email=u@example.org", "add", "-A")
    subprocess.run(
        [sys.executable, "-m", "qapigen", "generate", "-q"], cwd=user, check=True
    )
    # the schema changes and the package is not regenerated: both hooks act
    with (user / "schema" / "colours.json").open("a") as schema:
        schema.write(NEW_COMMAND)
    git(user, "add", "-A")
    stale = try_repo(user, tmp_path / "home")
    report = stale.stdout + stale.stderr
    assert stale.returncode == 1, report
    assert "colours is stale; to fix it run: qapigen generate" in report
    assert "+    async def get_colour(self) -> _t.Colour:" in report
    assert "files were modified by this hook" in report
    assert "get_colour" in (user / "colours" / "commands.py").read_text()

    git(user, "add", "-A")
    current = try_repo(user, tmp_path / "home", "qapigen-check")
    assert current.returncode == 0, current.stdout + current.stderr
    assert "Passed" in current.stdout
