"""Rules that only some QEMU releases enforce, and what the default level does with them.

QAPI changed between releases: 7.2 wants CamelCase type names where 5.2 took any,
10.0 reads doc comments paragraph by paragraph where 7.2 read them line by line, and
so on. At a release level (`--qapi-version`) a rule is enforced exactly when that
release enforces it. At the default level, what any supported release accepts passes,
so a rule that only some releases enforce is reported as a `QAPIWarning` and the
schema is accepted; what every release rejects stays an error.

Each rule below names the releases that enforce it and a short summary; a schema's
warnings are reported one line per rule (`report_warnings`), or one per place.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .level import Level
from .source import QAPIError, QAPIWarning, SourceInfo

RELEASES = (Level.V5_2, Level.V7_2, Level.V10_0)


@dataclass(frozen=True)
class Rule:
    """A rule of the QAPI language that some releases enforce.

    `name` is a short identifier; `enforced_by` the release levels that reject what
    breaks it; `summary` says what breaks it, in the plural, for a line that stands
    for all the places ("type names that are not CamelCase")."""

    name: str
    enforced_by: frozenset[Level]
    summary: str
    # when a release accepts it after all (said after "every QEMU release rejects
    # this", which would be wrong alone)
    unless: str = ""

    def rejected_by(self, what: str = "this") -> str:
        """Which releases reject it: "QEMU 5.2 and 7.2 reject this"."""
        versions = [level.value for level in RELEASES if level in self.enforced_by]
        if len(versions) == len(RELEASES):
            unless = f", unless {self.unless}" if self.unless else ""
            return f"every QEMU release rejects {what}{unless}"
        if len(versions) == 1:
            return f"QEMU {versions[0]} rejects {what}"
        return f"QEMU {', '.join(versions[:-1])} and {versions[-1]} reject {what}"


def _rule(name: str, releases: tuple[Level, ...], summary: str) -> Rule:
    return Rule(name, frozenset(releases), summary)


_5 = (Level.V5_2,)
_5_7 = (Level.V5_2, Level.V7_2)
_7_10 = (Level.V7_2, Level.V10_0)
_10 = (Level.V10_0,)
_ALL = RELEASES

# ---- names
NAME_CASE = _rule(
    "name-case", _7_10, "names that break the case rules of QEMU 7.2 and later"
)
NAME_UPPER_CASE = _rule(
    "name-upper-case", _5, "names with upper-case letters in a prefix"
)
NAME_KIND_SUFFIX = _rule("name-kind-suffix", _5, "type names ending in 'Kind'")

# ---- expressions
LEGACY_IF = _rule(
    "legacy-if", _7_10, "'if' conditions that are C preprocessor expressions"
)
MODERN_IF = _rule("modern-if", _5, "'if' conditions that are all/any/not objects")
SIMPLE_UNION = _rule(
    "simple-union", _7_10, "simple unions, without 'base' and 'discriminator'"
)
ARRAY_ALTERNATIVE = _rule("array-alternative", _5, "alternates with an array branch")
ENUM_VALUE_FEATURES = _rule("enum-value-features", _5, "enum values with features")
LEGACY_PRAGMA = _rule("legacy-pragma", _7_10, "pragmas under QEMU 5.x's names")
MODERN_PRAGMA = _rule("modern-pragma", _5, "pragmas under the names QEMU 6.0 gave them")
NEW_PRAGMA = _rule(
    "new-pragma",
    _5_7,
    "uses of pragma 'documentation-exceptions', new in QEMU 9.1",
)

# ---- the schema
UNION_BRANCH_UNION = _rule("union-branch-union", _5_7, "union branches that are unions")
SPECIAL_FEATURE_ON_TYPE = _rule(
    "special-feature-on-type", _7_10, "types with feature 'unstable'"
)
CONDITIONAL_UNBOXED_ARGS = _rule(
    "conditional-unboxed-args",
    _10,
    "conditional arguments of commands and events without 'boxed': true",
)
FEATURE_COUNT = _rule(
    "feature-count", _10, "feature names beyond the 64 a schema may have"
)
RETURNS_TYPE = Rule(
    "returns-type",
    frozenset(_ALL),
    "commands that return neither an object nor an array of objects and are not"
    " in pragma 'command-returns-exceptions'",
    # a module such as the bundled migration.json leaves that to the schema that
    # includes it (QEMU 5.2's pragma.json lists query-migrate-cache-size)
    unless="the schema that includes this file lists the command in that pragma",
)

# ---- doc comments
DOC_LAYOUT_10 = _rule(
    "doc-layout-10.0", _5_7, "doc comment sections laid out the QEMU 10.0 way"
)
DOC_INDENT_5_0 = _rule(
    "doc-indent-5.0",
    _5_7,
    "description lines indented less than the text they continue, as QEMU 5.1"
    " allowed",
)
DOC_REJECTED_BY_10 = _rule(
    "doc-rejected-by-10.0",
    _10,
    "doc comments that QEMU 10.0 rejects, such as 'Note:' and 'Example:' sections",
)
UNDOCUMENTED_MEMBER = _rule(
    "undocumented-member",
    _10,
    "members without a description in documented definitions",
)
DOC_SECTION_PLACE = _rule(
    "doc-section-place",
    _10,
    "'Returns:' sections of commands that return nothing and 'Errors:' sections"
    " outside commands",
)


def enforce(
    rule: Rule,
    level: Level,
    info: SourceInfo,
    message: str,
    warnings: list[QAPIWarning],
) -> None:
    """`message` at `info` breaks `rule`: an error at a level that enforces it, a
    warning at the default level, nothing at a release level that does not."""
    if level is Level.PERMISSIVE:
        warnings.append(QAPIWarning(info, message, rule))
    elif level in rule.enforced_by:
        raise QAPIError(info, message)


@dataclass
class WarningGroup:
    """The warnings of one rule, in the order they were found."""

    rule: Rule
    warnings: list[QAPIWarning]

    def summary(self) -> str:
        """One line for all of them: the first place, the rule, how many places
        (a rule met once: that warning, on one line)."""
        first = self.warnings[0]
        where = first.info.location()
        if len(self.warnings) == 1:
            return first.line()
        return (
            f"{where}: warning: {self.rule.summary}: {len(self.warnings)} places,"
            f" the first here ({self.rule.rejected_by('them')})"
        )


def group_warnings(warnings: Iterable[QAPIWarning]) -> list[WarningGroup]:
    """The warnings rule by rule, rules in the order of their first warning."""
    groups: dict[str, WarningGroup] = {}
    for warning in warnings:
        group = groups.get(warning.rule.name)
        if group is None:
            groups[warning.rule.name] = WarningGroup(warning.rule, [warning])
        else:
            group.warnings.append(warning)
    return list(groups.values())


def report_warnings(
    warnings: Iterable[QAPIWarning], verbose: bool = False
) -> list[str]:
    """The text to show for a schema's warnings: every warning when `verbose`
    (each with its include chain and "In struct 'X':" context lines), else one
    line per rule."""
    if verbose:
        return [str(warning) for warning in warnings]
    return [group.summary() for group in group_warnings(warnings)]
