"""The base class of every generated struct, union branch and event class.

Generated classes are plain classes with `__slots__` and an explicit keyword-only
`__init__`, not `@dataclass`es: creating a dataclass runs code generation at import
time (about 0.5 ms a class, over 800 of them in QEMU's complete schema), a plain
class costs about 1/50 of that, so a program pays for the types it uses, not for
the schema's size. What a dataclass adds besides `__init__` lives here once:
`__repr__`, `__eq__`, and the `dataclasses` protocol (`fields`, `asdict`,
`replace`, `is_dataclass` work on generated instances).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import dataclasses


class _DataclassFields:
    """`__dataclass_fields__`, built from `_FIELDS` and `_FIXED` the first time a
    class is asked for it (by `dataclasses.fields()` and its kin)."""

    def __get__(
        self, instance: object, owner: type[Struct]
    ) -> dict[str, dataclasses.Field[Any]]:
        # imported here: `dataclasses` (and the `inspect` it loads) costs more to
        # import than the classes it would describe; only its own callers need it

        built: dict[str, dataclasses.Field[Any]] = {}
        annotations = _annotations(owner)
        for name in owner._FIELDS:
            built[name] = _field(name, annotations.get(name, "object"), init=True)
        for name in owner._UNCOMPARED:
            built[name] = _field(
                name, annotations.get(name, "object"), init=True, compare=False
            )
        for name in owner._FIXED:
            built[name] = _field(name, annotations.get(name, "object"), init=False)
        # later lookups find the class's own attribute, not this descriptor
        type.__setattr__(owner, "__dataclass_fields__", built)
        return built


def _annotations(cls: type) -> dict[str, object]:
    import inspect

    merged: dict[str, object] = {}
    for klass in reversed(cls.__mro__):
        merged.update(inspect.get_annotations(klass))
    return merged


def _field(
    name: str, annotation: object, init: bool, compare: bool | None = None
) -> dataclasses.Field[Any]:
    import dataclasses

    field: dataclasses.Field[Any] = dataclasses.field(
        init=init, compare=init if compare is None else compare
    )
    field.name = name
    field.type = annotation
    # what dataclasses.fields() filters on (a class variable or an init-only
    # pseudo-field is not a field); private, but stable since Python 3.7
    field._field_type = dataclasses._FIELD  # type: ignore[attr-defined]
    return field


class Struct:
    """A QAPI object: its members as attributes, `extra` for members the schema
    lacks (what a newer QEMU sent), `from_wire`/`to_wire` generated per class.

    A subclass's `__slots__` are its attributes (members in order, then `extra`); a
    union branch lists its fixed tag members in `_FIXED` (set by its own `__init__`,
    not taken as arguments), an event its `timestamp` in `_UNCOMPARED`. `_FIELDS`,
    the slots but those, is what `__init__` takes and equality compares: two values
    are equal when every member and `extra` are (the tags are the class's, and events
    with equal data are equal whenever they came).
    """

    __slots__ = ()
    _FIELDS: ClassVar[tuple[str, ...]] = ()
    _FIXED: ClassVar[tuple[str, ...]] = ()
    _UNCOMPARED: ClassVar[tuple[str, ...]] = ()
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]] = (
        _DataclassFields()  # type: ignore[assignment]
    )

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        slots = cls.__dict__.get("__slots__", ())
        others = {*cls._UNCOMPARED, *cls._FIXED}
        cls._FIELDS = tuple(name for name in slots if name not in others)

    def __repr__(self) -> str:
        shown = (*self._FIXED, *self._FIELDS, *self._UNCOMPARED)
        members = ", ".join(f"{name}={getattr(self, name)!r}" for name in shown)
        return f"{type(self).__qualname__}({members})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self._FIELDS)

    # mutable, so not hashable: what a dataclass with eq=True does
    __hash__ = None  # type: ignore[assignment]

    if TYPE_CHECKING:  # every generated class defines them

        @classmethod
        def from_wire(
            cls, value: object, path: str = "", strict: bool = False
        ) -> Struct: ...

        def to_wire(self) -> dict[str, object]: ...
