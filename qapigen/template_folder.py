"""Where the Jinja templates are.

In this repository they live in the top-level `templates/` folder, beside the `qapigen`
package; a wheel carries them inside the package as `qapigen/templates/` (see
`[tool.hatch.build.targets.wheel]` in pyproject.toml). The templates are data, not
Python: nothing imports them.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def templates_folder() -> Path:
    """The folder holding the `*.j2` templates."""
    for candidate in (_PACKAGE / "templates", _PACKAGE.parent / "templates"):
        if (candidate / "macros.j2").is_file():
            return candidate
    raise FileNotFoundError(
        f"qapigen's templates are missing (looked in {_PACKAGE / 'templates'} and"
        f" {_PACKAGE.parent / 'templates'}): the installation is incomplete"
    )
