"""Expression checks: every top-level expression on its own, then desugared.

This stage sees one expression at a time and needs no other definition: it checks the
keys each meta-type allows, the naming rules, `if` conditions, features, members and
flags, and turns the JSON shapes into typed definitions (`EnumDef`, `StructDef`, ...)
in which every shorthand is expanded (`'int'` member → `MemberDef`, `'*x'` → optional,
`'f'` feature → `FeatureDef`, conditions → `IfCond`). Whatever needs the other
definitions (does the type exist, do members clash through a base) is
qapigen.schema's job.

The language level selects the rules:

- V5_2: `if` is a C preprocessor string or a list of them; simple unions (no
  'discriminator') exist; definition names only need to be valid identifiers and must
  not end in 'List' or 'Kind'; alternatives cannot be arrays; enum values have no
  features; only 'deprecated' is a special feature.
- V7_2, V10_0: `if` is an identifier or an all/any/not object; unions need 'base'
  and 'discriminator'; types are CamelCase, events UPPER_CASE, commands and members
  lower-case with '-' (pragma exceptions aside); 'unstable' is special too.
- PERMISSIVE: what any of them accepts (legacy and modern `if`, simple unions, any
  case in names, ...). What only some releases reject is a warning (see
  qapigen.rules); what all of them reject is an error.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from . import rules
from .doc import QAPIDoc
from .ifcond import ALWAYS, IDENTIFIER, ConditionSyntaxError, IfCond
from .level import Level
from .parser import Expression
from .rules import Rule, enforce
from .source import Note, QAPIError, QAPIWarning, SourceInfo, excerpt

META_TYPES = ("enum", "struct", "union", "alternate", "command", "event")


# ---------------------------------------------------------------- desugared forms


@dataclass(frozen=True, slots=True)
class TypeRef:
    """A reference to a type by name, or to an array of it (`['T']`)."""

    name: str
    is_array: bool = False

    def __str__(self) -> str:
        return f"['{self.name}']" if self.is_array else self.name


@dataclass(slots=True)
class FeatureDef:
    name: str
    ifcond: IfCond = ALWAYS


@dataclass(slots=True)
class EnumValueDef:
    name: str
    ifcond: IfCond = ALWAYS
    features: list[FeatureDef] = field(default_factory=list)


@dataclass(slots=True)
class MemberDef:
    name: str
    type: TypeRef
    optional: bool = False
    ifcond: IfCond = ALWAYS
    features: list[FeatureDef] = field(default_factory=list)


@dataclass(slots=True)
class BranchDef:
    """A union branch or an alternative of an alternate."""

    name: str
    type: TypeRef
    ifcond: IfCond = ALWAYS


@dataclass(slots=True, kw_only=True)
class Definition:
    """What every definition has. `info` carries the "In struct 'X':" context;
    `expr` is the expression as written (doc checks read it)."""

    name: str
    info: SourceInfo
    doc: QAPIDoc | None
    ifcond: IfCond
    features: list[FeatureDef]
    expr: dict[str, object]


@dataclass(slots=True, kw_only=True)
class EnumDef(Definition):
    values: list[EnumValueDef]
    prefix: str | None


@dataclass(slots=True, kw_only=True)
class StructDef(Definition):
    base: str | None
    members: list[MemberDef]


@dataclass(slots=True, kw_only=True)
class UnionDef(Definition):
    """A union. `discriminator` None is a QEMU 5.x simple union (branches wrap
    their type in a 'data' member and an implicit enum supplies the tag). `base` is a
    type name or inline members (None: no base)."""

    base: str | list[MemberDef] | None
    discriminator: str | None
    branches: list[BranchDef]


@dataclass(slots=True, kw_only=True)
class AlternateDef(Definition):
    branches: list[BranchDef]


@dataclass(slots=True, kw_only=True)
class CommandDef(Definition):
    """`data` is a type name, inline members, or None (no arguments)."""

    data: str | list[MemberDef] | None
    returns: TypeRef | None
    boxed: bool
    gen: bool
    success_response: bool
    allow_oob: bool
    allow_preconfig: bool
    coroutine: bool


@dataclass(slots=True, kw_only=True)
class EventDef(Definition):
    data: str | list[MemberDef] | None
    boxed: bool


@dataclass(slots=True)
class IncludeDef:
    """An include directive; `fname` is the included file as its expressions'
    `info.fname` spells it."""

    fname: str
    info: SourceInfo


TopLevel = EnumDef | StructDef | UnionDef | AlternateDef | CommandDef | EventDef
CheckedExpr = TopLevel | IncludeDef


# ---------------------------------------------------------------- names

# optional downstream prefix `__RFQDN_`, optional experimental prefix `x-`, then a
# letter, then letters, digits, '-' and '_'; the case rules apply to what follows the
# prefixes (so `__org.qemu_x-Foo` is CamelCase and `__ORG.QEMU_X-EVENT` upper case)
_VALID_NAME = re.compile(r"(__[a-zA-Z0-9.-]+_)?([xX]-)?([a-zA-Z][a-zA-Z0-9_-]*)")
_CAMEL = re.compile(r"[A-Z][A-Za-z0-9]*[a-z][A-Za-z0-9]*")
_UPPER = re.compile(r"[A-Z]")
_NOT_C_IDENT_CHAR = re.compile(r"[^A-Za-z0-9_]")


def c_name(name: str) -> str:
    """The C-ish spelling used to detect clashes: '-' and '.' become '_'."""
    return _NOT_C_IDENT_CHAR.sub("_", name)


class _Checker:
    """Checks the expressions of one schema at one language level."""

    def __init__(self, level: Level, warnings: list[QAPIWarning]) -> None:
        self.level = level
        self.legacy = level is Level.V5_2
        self.modern = level in (Level.V7_2, Level.V10_0)
        self.permissive = level is Level.PERMISSIVE
        self.warnings = warnings

    def breach(self, rule: Rule, info: SourceInfo, message: str) -> None:
        """A rule only some releases enforce is broken (see qapigen.rules)."""
        enforce(rule, self.level, info, message, self.warnings)

    # ---- generic helpers

    def stem(self, name: str, info: SourceInfo, source: str) -> str:
        """Check `name` is a valid QAPI name and return it without downstream prefix.

        The whole `q_` namespace is the generator's (`q_empty`, `q_obj_*`)."""
        match = _VALID_NAME.fullmatch(name)
        if match is None or c_name(name).startswith("q_"):
            raise QAPIError(info, f"{source} has an invalid name")
        return match.group(3)

    def check_lower(
        self,
        name: str,
        info: SourceInfo,
        source: str,
        permit_upper: bool = False,
        permit_underscore: bool = False,
        legacy_rule: bool = True,
        modern_rule: bool = True,
    ) -> None:
        """QEMU 7.2+ want lower-case words joined by '-' after the prefixes
        (`modern_rule`); 5.2 wants no upper-case letter anywhere (`legacy_rule`).
        What both reject is an error at every level."""
        stem = self.stem(name, info, source)
        # a release level checks only its own rule; the default level both
        modern_bad = (
            modern_rule
            and not self.legacy
            and (
                (not permit_upper and _UPPER.search(stem) is not None)
                or (not permit_underscore and "_" in stem)
            )
        )
        legacy_bad = (
            legacy_rule
            and not self.modern
            and not permit_upper
            and name.lower() != name
        )
        if not (modern_bad or legacy_bad):
            return
        modern_msg = f"name of {source} must be lower-case words joined by '-'"
        if modern_bad and legacy_bad:
            raise QAPIError(info, modern_msg)  # no release accepts it
        if modern_bad:
            self.breach(rules.NAME_CASE, info, modern_msg)
        else:
            self.breach(
                rules.NAME_UPPER_CASE,
                info,
                f"{source} must not contain upper-case letters",
            )

    def check_definition_name(self, name: str, meta: str, info: SourceInfo) -> None:
        stem = self.stem(name, info, meta)
        if self.legacy:
            pass  # QEMU 5.2 has no case rules for definitions
        elif meta == "event":
            if re.search(r"[a-z-]", stem):
                self.breach(
                    rules.NAME_CASE,
                    info,
                    "name of an event must be upper-case words joined by '_'",
                )
        elif meta == "command":
            pragma = info.pragma
            excepted = pragma is not None and name in pragma.command_name_exceptions
            self.check_lower(
                name, info, meta, permit_underscore=excepted, legacy_rule=False
            )
        elif not _CAMEL.fullmatch(stem):
            article = "an" if meta[0] in "aeiou" else "a"
            self.breach(
                rules.NAME_CASE, info, f"name of {article} {meta} must be CamelCase"
            )
        if name.endswith("List"):
            raise QAPIError(
                info, f"{meta} name must not end in 'List' (the generator reserves it)"
            )
        if name.endswith("Kind"):
            self.breach(
                rules.NAME_KIND_SUFFIX,
                info,
                f"{meta} name must not end in 'Kind' (the generator reserves it)",
            )

    @staticmethod
    def require_str(value: object, info: SourceInfo, source: str) -> str:
        if not isinstance(value, str):
            raise QAPIError(info, f"{source} needs a string name")
        return value

    @staticmethod
    def check_keys(
        value: object,
        info: SourceInfo,
        source: str,
        required: Sequence[str],
        optional: Sequence[str],
    ) -> dict[str, object]:
        if not isinstance(value, dict):
            raise QAPIError(info, f"{source} must be an object")
        missing = [k for k in required if k not in value]
        unknown = [k for k in value if k not in required and k not in optional]
        if missing:
            raise QAPIError(
                info,
                f"{source} lacks required key{_s(missing)} {_quoted(missing)}",
                _misspelling_notes(unknown, missing),
            )
        if unknown:
            valid = sorted([*required, *optional])
            raise QAPIError(
                info,
                f"{source} has unknown key{_s(unknown)}"
                f" {_quoted([excerpt(k) for k in unknown])}\n"
                f"Valid keys are {_quoted(valid)}.",
                _misspelling_notes(unknown, valid),
            )
        return value

    # ---- conditions

    def check_if(
        self, holder: dict[str, object], info: SourceInfo, source: str
    ) -> IfCond:
        raw = holder.get("if")
        if raw is None:
            return ALWAYS
        if self.legacy:
            return self._legacy_if(raw, info, source)
        if self.modern:
            self._modern_if(raw, info, source)
            return IfCond.modern(raw)
        # the default level: either spelling, but not both in one condition
        if isinstance(raw, str) and IDENTIFIER.fullmatch(raw):
            return IfCond.modern(raw)  # the same in both
        if isinstance(raw, (str, list)):
            # kept as written (QEMU 5.2 turns a lone string into a list)
            cond = IfCond(self._legacy_if(raw, info, source).expr, raw)
            self.breach(
                rules.LEGACY_IF,
                info,
                f"'if' condition of {source} is a C preprocessor expression"
                " (write an identifier or an all/any/not object)",
            )
            return cond
        self._modern_if(raw, info, source)
        self.breach(
            rules.MODERN_IF,
            info,
            f"'if' condition of {source} is an object"
            " (QEMU 5.x wants C preprocessor expressions)",
        )
        return IfCond.modern(raw)

    def _legacy_if(self, raw: object, info: SourceInfo, source: str) -> IfCond:
        items = raw if isinstance(raw, list) else [raw]
        if not items:
            raise QAPIError(info, f"'if' condition [] of {source} is useless")
        texts: list[str] = []
        for item in items:
            if not isinstance(item, str):
                raise QAPIError(
                    info,
                    f"'if' condition of {source} must be a string"
                    " or a list of strings",
                )
            if not item.strip():
                raise QAPIError(
                    info, f"'if' condition '{excerpt(item)}' of {source} makes no sense"
                )
            texts.append(item)
        try:
            return IfCond.legacy(texts)
        except ConditionSyntaxError as exc:
            raise QAPIError(
                info,
                f"'if' condition '{excerpt(exc.text)}' of {source} is not a C"
                f" preprocessor expression: {exc.reason}",
            ) from None

    def _modern_if(self, cond: object, info: SourceInfo, source: str) -> None:
        if isinstance(cond, str):
            if IDENTIFIER.fullmatch(cond):
                return
            hint = ""
            if self.permissive and cond.strip():
                hint = (
                    "; a C preprocessor expression (QEMU 5.x) cannot be part of an"
                    " all/any/not object (QEMU 6.0+)"
                )
            raise QAPIError(
                info,
                f"'if' condition '{excerpt(cond)}' of {source} is not a valid"
                f" identifier (upper-case letters, digits and '_'){hint}",
            )
        if not isinstance(cond, dict):
            raise QAPIError(
                info, f"'if' condition of {source} must be a string or an object"
            )
        self.check_keys(
            cond, info, f"'if' condition of {source}", [], ["all", "any", "not"]
        )
        if len(cond) != 1:
            raise QAPIError(
                info,
                f"'if' condition of {source} must have exactly one of"
                " 'all', 'any', 'not'",
            )
        ((key, value),) = cond.items()
        if key == "not":
            self._modern_if(value, info, source)
            return
        if not isinstance(value, list):
            raise QAPIError(info, f"'{key}' condition of {source} must be an array")
        if not value:
            raise QAPIError(info, f"'if' condition [] of {source} is useless")
        for operand in value:
            self._modern_if(operand, info, source)

    # ---- features

    def check_features(self, raw: object, info: SourceInfo) -> list[FeatureDef]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise QAPIError(info, "'features' must be an array")
        features: list[FeatureDef] = []
        for item in raw:
            feat = item if isinstance(item, dict) else {"name": item}
            source = "'features' member"
            self.check_keys(feat, info, source, ["name"], ["if"])
            name = self.require_str(feat["name"], info, source)
            source = f"'features' member '{excerpt(name)}'"
            self.check_lower(name, info, source)
            features.append(FeatureDef(name, self.check_if(feat, info, source)))
        return features

    # ---- type references and members

    def check_type_ref(
        self, value: object, info: SourceInfo, source: str, allow_array: bool
    ) -> TypeRef:
        if isinstance(value, str):
            return TypeRef(value)
        if isinstance(value, list):
            if not allow_array:
                raise QAPIError(info, f"{source} cannot be an array")
            if len(value) != 1 or not isinstance(value[0], str):
                raise QAPIError(
                    info, f"{source}: an array type must hold exactly one type name"
                )
            return TypeRef(value[0], True)
        raise QAPIError(info, f"{source} must be a type name")

    def check_members(
        self, value: object, info: SourceInfo, source: str, owner: str | None
    ) -> list[MemberDef]:
        """Inline members (`{ 'name': TYPE-REF, '*opt': {...} }`).

        `owner` names the type whose members these are, for the pragma that exempts
        some types from the member naming rules (None: nobody is exempt)."""
        if not isinstance(value, dict):
            raise QAPIError(info, f"{source} must be an object or a type name")
        pragma = info.pragma
        excepted = (
            owner is not None
            and pragma is not None
            and owner in pragma.member_name_exceptions
        )
        members: list[MemberDef] = []
        for key, arg in value.items():
            key_source = f"{source} member '{excerpt(key)}'"
            optional = key.startswith("*")
            name = key[1:] if optional else key
            self.check_lower(
                name,
                info,
                key_source,
                permit_upper=excepted,
                permit_underscore=excepted,
            )
            cname = c_name(name)
            if cname == "u" or cname.startswith("has_"):
                raise QAPIError(
                    info, f"{key_source} uses a name the generator reserves"
                )
            spec = arg if isinstance(arg, dict) else {"type": arg}
            self.check_keys(spec, info, key_source, ["type"], ["if", "features"])
            ifcond = self.check_if(spec, info, key_source)
            features = self.check_features(spec.get("features"), info)
            typ = self.check_type_ref(spec["type"], info, key_source, allow_array=True)
            members.append(MemberDef(name, typ, optional, ifcond, features))
        return members

    def check_data(
        self, value: object, info: SourceInfo, allow_inline: bool, owner: str | None
    ) -> str | list[MemberDef]:
        """'data' / 'base' that may be a type name or (when allowed) inline members."""
        if isinstance(value, str):
            return value
        if isinstance(value, list):
            raise QAPIError(info, "'data' cannot be an array")
        if not allow_inline:
            raise QAPIError(info, "'data' must be a type name")
        return self.check_members(value, info, "'data'", owner)

    def check_branches(
        self,
        value: object,
        info: SourceInfo,
        allow_array: bool | Rule,
        check_name: bool,
        modern_name_rule: bool = True,
    ) -> list[BranchDef]:
        """Union branches or alternatives. `allow_array` may be the rule that only
        some releases allow arrays by; `modern_name_rule` False checks branch names
        by QEMU 5.2's rule only."""
        if not isinstance(value, dict):
            raise QAPIError(info, "'data' must be an object")
        branches: list[BranchDef] = []
        for key, arg in value.items():
            source = f"'data' member '{excerpt(key)}'"
            if check_name:
                self.check_lower(key, info, source, modern_rule=modern_name_rule)
            spec = arg if isinstance(arg, dict) else {"type": arg}
            self.check_keys(spec, info, source, ["type"], ["if"])
            ifcond = self.check_if(spec, info, source)
            typ = self.check_type_ref(spec["type"], info, source, bool(allow_array))
            if typ.is_array and isinstance(allow_array, Rule):
                self.breach(allow_array, info, f"{source} cannot be an array")
            branches.append(BranchDef(key, typ, ifcond))
        return branches

    # ---- flags

    @staticmethod
    def flag(
        expr: dict[str, object], key: str, info: SourceInfo, default: bool
    ) -> bool:
        if key not in expr:
            return default
        if expr[key] is default:
            raise QAPIError(
                info,
                f"flag '{key}' can only be {str(not default).lower()}"
                f" (omit it for {str(default).lower()})",
            )
        if not isinstance(expr[key], bool):
            raise QAPIError(
                info, f"flag '{key}' can only be {str(not default).lower()}"
            )
        return not default

    # ---- one expression

    def check(self, expression: Expression) -> CheckedExpr:
        expr = expression.expr
        info = expression.info
        if "include" in expr:
            fname = expression.include_path
            if fname is None:
                raw = expr["include"]
                assert isinstance(raw, str)
                fname = raw
            return IncludeDef(fname, info)
        metas = [m for m in META_TYPES if m in expr]
        if len(metas) != 1:
            raise QAPIError(
                info,
                "a definition needs exactly one of the keys "
                + ", ".join(f"'{m}'" for m in META_TYPES),
                _misspelling_notes(list(expr), META_TYPES) if not metas else (),
            )
        meta = metas[0]
        name = self.require_str(expr[meta], info, f"'{meta}'")
        info = info.in_definition(meta, name)
        self.check_definition_name(name, meta, info)
        doc = expression.doc
        if doc is not None:
            if doc.symbol != name:
                raise QAPIError(
                    info,
                    f"the documentation comment above is for '{excerpt(doc.symbol or '')}'",
                )
            doc.check_expr(expr)
        elif info.pragma is not None and info.pragma.doc_required:
            raise QAPIError(
                info, "documentation comment required (pragma 'doc-required')"
            )
        checker = getattr(self, f"_check_{meta}")
        result: TopLevel = checker(expr, info, name, doc)
        return result

    def _common(
        self,
        expr: dict[str, object],
        info: SourceInfo,
        meta: str,
        required: Sequence[str],
        optional: Sequence[str],
    ) -> None:
        self.check_keys(
            expr, info, meta, [meta, *required], [*optional, "if", "features"]
        )

    def _check_enum(
        self, expr: dict[str, object], info: SourceInfo, name: str, doc: QAPIDoc | None
    ) -> EnumDef:
        self._common(expr, info, "enum", ["data"], ["prefix"])
        data = expr["data"]
        prefix = expr.get("prefix")
        if not isinstance(data, list):
            raise QAPIError(info, "'data' must be an array")
        if prefix is not None and not isinstance(prefix, str):
            raise QAPIError(info, "'prefix' must be a string")
        pragma = info.pragma
        excepted = pragma is not None and name in pragma.member_name_exceptions
        value_keys = ["if"] if self.legacy else ["if", "features"]
        values: list[EnumValueDef] = []
        for item in data:
            spec = item if isinstance(item, dict) else {"name": item}
            source = "'data' member"
            self.check_keys(spec, info, source, ["name"], value_keys)
            value = self.require_str(spec["name"], info, source)
            source = f"'data' member '{excerpt(value)}'"
            # values may start with a digit: C prefixes them with the enum's name
            checked = "d" + value if value[:1].isdigit() else value
            self.check_lower(
                checked, info, source, permit_upper=excepted, permit_underscore=excepted
            )
            ifcond = self.check_if(spec, info, source)
            if "features" in spec:
                self.breach(
                    rules.ENUM_VALUE_FEATURES,
                    info,
                    f"{source} has unknown key 'features' (enum values have"
                    " features from QEMU 6.0)",
                )
            features = self.check_features(spec.get("features"), info)
            values.append(EnumValueDef(value, ifcond, features))
        return EnumDef(
            name=name,
            info=info,
            doc=doc,
            ifcond=self.check_if(expr, info, "enum"),
            features=self.check_features(expr.get("features"), info),
            expr=expr,
            values=values,
            prefix=prefix,
        )

    def _check_struct(
        self, expr: dict[str, object], info: SourceInfo, name: str, doc: QAPIDoc | None
    ) -> StructDef:
        self._common(expr, info, "struct", ["data"], ["base"])
        data = expr["data"]
        if isinstance(data, list):
            raise QAPIError(info, "'data' cannot be an array")
        if not isinstance(data, dict):
            raise QAPIError(info, "'data' of a struct must be an object (its members)")
        members = self.check_members(data, info, "'data'", name)
        base = expr.get("base")
        if base is not None and not isinstance(base, str):
            raise QAPIError(info, "'base' must be a type name")
        return StructDef(
            name=name,
            info=info,
            doc=doc,
            ifcond=self.check_if(expr, info, "struct"),
            features=self.check_features(expr.get("features"), info),
            expr=expr,
            base=base,
            members=members,
        )

    def _check_union(
        self, expr: dict[str, object], info: SourceInfo, name: str, doc: QAPIDoc | None
    ) -> UnionDef:
        if self.modern:
            self._common(expr, info, "union", ["base", "discriminator", "data"], [])
        else:
            self._common(expr, info, "union", ["data"], ["base", "discriminator"])
        raw_base = expr.get("base")
        discriminator = expr.get("discriminator")
        base: str | list[MemberDef] | None = None
        if discriminator is None:
            # a QEMU 5.x simple union
            if raw_base is not None:
                raise QAPIError(info, "'base' needs 'discriminator' (a flat union)")
            self.breach(
                rules.SIMPLE_UNION,
                info,
                "a union without 'base' and 'discriminator' is a simple union"
                " (QEMU 5.x only)",
            )
        else:
            if raw_base is None:
                raise QAPIError(info, "'discriminator' needs 'base'")
            if isinstance(raw_base, str):
                base = raw_base
            elif isinstance(raw_base, list):
                raise QAPIError(info, "'base' cannot be an array")
            else:
                base = self.check_members(raw_base, info, "'base'", name) or None
                if base is None and not self.modern:
                    raise QAPIError(info, "'discriminator' needs a non-empty 'base'")
            discriminator = self.require_str(discriminator, info, "'discriminator'")
        # QEMU 5.2 checks the names of a flat union's branches too
        branches = self.check_branches(
            expr["data"],
            info,
            allow_array=discriminator is None,
            check_name=discriminator is None or not self.modern,
            modern_name_rule=discriminator is None,
        )
        return UnionDef(
            name=name,
            info=info,
            doc=doc,
            ifcond=self.check_if(expr, info, "union"),
            features=self.check_features(expr.get("features"), info),
            expr=expr,
            base=base,
            discriminator=discriminator,
            branches=branches,
        )

    def _check_alternate(
        self, expr: dict[str, object], info: SourceInfo, name: str, doc: QAPIDoc | None
    ) -> AlternateDef:
        self._common(expr, info, "alternate", ["data"], [])
        data = expr["data"]
        if not data:
            raise QAPIError(info, "'data' of an alternate must not be empty")
        branches = self.check_branches(
            data, info, allow_array=rules.ARRAY_ALTERNATIVE, check_name=True
        )
        return AlternateDef(
            name=name,
            info=info,
            doc=doc,
            ifcond=self.check_if(expr, info, "alternate"),
            features=self.check_features(expr.get("features"), info),
            expr=expr,
            branches=branches,
        )

    def _check_command(
        self, expr: dict[str, object], info: SourceInfo, name: str, doc: QAPIDoc | None
    ) -> CommandDef:
        self._common(
            expr,
            info,
            "command",
            [],
            [
                "data",
                "returns",
                "boxed",
                "gen",
                "success-response",
                "allow-oob",
                "allow-preconfig",
                "coroutine",
            ],
        )
        boxed = self.flag(expr, "boxed", info, False)
        raw_data = expr.get("data")
        if boxed and raw_data is None:
            raise QAPIError(info, "'boxed': true needs 'data'")
        data = (
            None
            if raw_data is None
            else self.check_data(raw_data, info, allow_inline=not boxed, owner=None)
        )
        raw_returns = expr.get("returns")
        returns = None
        if raw_returns is not None:
            returns = self.check_type_ref(raw_returns, info, "'returns'", True)
        ifcond = self.check_if(expr, info, "command")
        features = self.check_features(expr.get("features"), info)
        gen = self.flag(expr, "gen", info, True)
        success_response = self.flag(expr, "success-response", info, True)
        allow_oob = self.flag(expr, "allow-oob", info, False)
        allow_preconfig = self.flag(expr, "allow-preconfig", info, False)
        coroutine = self.flag(expr, "coroutine", info, False)
        if allow_oob and coroutine:
            raise QAPIError(
                info, "a command cannot have both 'allow-oob' and 'coroutine'"
            )
        return CommandDef(
            name=name,
            info=info,
            doc=doc,
            ifcond=ifcond,
            features=features,
            expr=expr,
            data=data,
            returns=returns,
            boxed=boxed,
            gen=gen,
            success_response=success_response,
            allow_oob=allow_oob,
            allow_preconfig=allow_preconfig,
            coroutine=coroutine,
        )

    def _check_event(
        self, expr: dict[str, object], info: SourceInfo, name: str, doc: QAPIDoc | None
    ) -> EventDef:
        self._common(expr, info, "event", [], ["data", "boxed"])
        boxed = self.flag(expr, "boxed", info, False)
        raw_data = expr.get("data")
        if boxed and raw_data is None:
            raise QAPIError(info, "'boxed': true needs 'data'")
        data = (
            None
            if raw_data is None
            else self.check_data(raw_data, info, allow_inline=not boxed, owner=None)
        )
        return EventDef(
            name=name,
            info=info,
            doc=doc,
            ifcond=self.check_if(expr, info, "event"),
            features=self.check_features(expr.get("features"), info),
            expr=expr,
            data=data,
            boxed=boxed,
        )


def _misspelling_notes(
    written: Sequence[str], meant: Sequence[str]
) -> tuple[Note, ...]:
    """ "did you mean" notes: each written key close to one it could have been."""
    notes: list[Note] = []
    for key in written:
        close = difflib.get_close_matches(key, meant, n=1, cutoff=0.6)
        if close:
            notes.append(
                Note(None, f"is '{excerpt(key)}' a misspelling of '{close[0]}'?")
            )
    return tuple(notes)


def _s(items: Sequence[str]) -> str:
    return "s" if len(items) > 1 else ""


def _quoted(items: Sequence[str]) -> str:
    return ", ".join(f"'{item}'" for item in items)


def check_exprs(
    exprs: Sequence[Expression],
    level: Level,
    warnings: list[QAPIWarning] | None = None,
) -> list[CheckedExpr]:
    """Check and desugar every expression, in order. Raises QAPIError; at the
    default level, appends to `warnings` what only some releases reject."""
    checker = _Checker(level, warnings if warnings is not None else [])
    return [checker.check(expression) for expression in exprs]
