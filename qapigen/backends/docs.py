"""Docstring text from QAPI doc comments: description, members, features, sections."""

from __future__ import annotations

from ..doc import QAPIDoc


def condition_text(condition: object) -> str:
    """A condition's JSON form as words for docstrings: ``CONFIG_A and not CONFIG_B``."""
    if isinstance(condition, str):
        return condition
    if isinstance(condition, dict) and len(condition) == 1:
        ((operator, operand),) = condition.items()
        if operator == "not":
            return f"not {condition_text(operand)}"
        if isinstance(operand, list):
            words = f" {operator.replace('all', 'and').replace('any', 'or')} "
            parts = [condition_text(item) for item in operand]
            return "(" + words.join(parts) + ")" if len(parts) > 1 else parts[0]
    return repr(condition)


def annotate(text: str, *, deprecated: bool = False, condition: object = None) -> str:
    """A member's doc text with its deprecation and `if` condition noted."""
    if deprecated:
        text = f"(deprecated) {text}"
    if condition is not None:
        text = f"{text} (if {condition_text(condition)})"
    return text.strip()


def member_doc(doc: QAPIDoc | None, name: str) -> str:
    if doc is None:
        return ""
    section = doc.args.get(name)
    return section.text.strip() if section is not None else ""


def doc_text(
    doc: QAPIDoc | None,
    *,
    members_heading: str = "Attributes",
    members: list[tuple[str, str]] | None = None,
    deprecated: bool = False,
    deprecated_use: str = "using it",
    condition: object = None,
    fallback: str = "",
) -> str:
    """A docstring body from a QAPI doc comment: the description, the members (under
    `members_heading`, as ``python_name: text``), features, then tagged sections
    such as Returns and Since, in the schema's order. A `deprecated` symbol says so
    first, and that `deprecated_use` warns."""
    parts: list[str] = []
    body = doc.body.text.strip() if doc is not None else ""
    parts.append(body or fallback)
    if deprecated:
        parts.append(
            f"Deprecated: this is deprecated in the schema; {deprecated_use} warns."
        )
    if condition is not None:
        parts.append(f"Only if {condition_text(condition)}.")
    described = [(name, text) for name, text in members or [] if text]
    if described:
        parts.append(
            f"{members_heading}:\n" + "\n".join(_item(n, t) for n, t in described)
        )
    if doc is not None:
        features = [
            (n, s.text.strip()) for n, s in doc.features.items() if s.text.strip()
        ]
        if features:
            parts.append("Features:\n" + "\n".join(_item(n, t) for n, t in features))
        for section in doc.sections:
            text = section.text.strip()
            if section.name is None:
                if text:
                    parts.append(text)
                continue
            if "\n" in text or len(text) > 60:
                indented = "\n".join(
                    "    " + line if line else "" for line in text.split("\n")
                )
                parts.append(f"{section.name}:\n{indented}")
            else:
                parts.append(f"{section.name}: {text}".rstrip())
    return "\n\n".join(part for part in parts if part)


def _item(name: str, text: str) -> str:
    lines = text.split("\n")
    first = f"    {name}: {lines[0]}"
    rest = ["        " + line if line.strip() else "" for line in lines[1:]]
    return "\n".join([first, *rest])
