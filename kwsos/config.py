"""Configuration dataclasses: one strict ``to_dict`` / ``from_dict`` for every config in kwsos.

Configs are frozen dataclasses (house style): ``__init__`` validates, ``to_dict`` gives plain
JSON-able values (tuples become lists, nested configs become dicts, objects with a
``to_dict`` such as feature extractors are written with it), and ``from_dict`` is the inverse
and **strict**: a key that is not a field is an error that names it, so a typo in a recipe's
JSON never passes silently.

Values are checked against the fields' type hints (:func:`check_fields`: a number where a
float is declared, a list of integer pairs for ``tuple[tuple[int, int], ...]``, ...), so a
damaged or hand-edited file gives an error naming the field instead of a crash later; ranges
are checked by each config's ``__post_init__``. Nested sections are fields whose type is
another :class:`Config`; ``from_dict`` builds them from their dicts. A field whose value needs a custom decoder (e.g. a feature extractor) names
it in the class's ``_decoders``.

:meth:`Config.from_flat` accepts the flat keyword style users are used to
(``OpenSetClassifier(threshold=0.6, epochs=0)``): each key goes to the one section that has a
field of that name.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Self

from kwsos.errors import KwsosError

__all__ = ["Config", "ConfigError", "check_fields", "check_value"]


class ConfigError(KwsosError):
    """An unknown option or an invalid value in a configuration."""


_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _describe(hint: Any) -> str:
    if hint in _TYPE_WORDS:
        return _TYPE_WORDS[hint]
    if hint is type(None):
        return "null"
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(hint))
    if origin is tuple:
        return "a list"
    if origin is dict:
        return "a mapping"
    return getattr(hint, "__name__", str(hint))


def check_value(value: Any, hint: Any, name: str) -> Any:
    """``value`` checked against the type hint ``hint`` (and converted: lists become tuples,
    integers become floats where a float is declared). Raises :class:`ConfigError` naming
    ``name``. Hints it does not know (``Any``, classes) pass unchecked."""

    def bad() -> ConfigError:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        return ConfigError(f"{name} must be {_describe(hint)}, got {shown}")

    if hint is Any:
        return value
    if hint is type(None):
        if value is not None:
            raise bad()
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for arm in typing.get_args(hint):
            try:
                return check_value(value, arm, name)
            except ConfigError:
                continue
        raise bad()
    if origin is typing.Literal:
        if value not in typing.get_args(hint):
            raise bad()
        return value
    if hint is bool:
        if not isinstance(value, bool | np_bool()):
            raise bad()
        return bool(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int | np_integer()):
            raise bad()
        return int(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float | np_number()):
            raise bad()
        if isinstance(value, float) and math.isnan(value):
            raise ConfigError(f"{name} must be a number, got NaN")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise bad()
        return value
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, list | tuple):
            raise bad()
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(check_value(v, args[0], f"{name}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{name} must have {len(args)} entries, got {len(value)}")
        pairs = enumerate(zip(value, args, strict=True))
        return tuple(check_value(v, a, f"{name}[{i}]") for i, (v, a) in pairs)
    if origin is dict:
        kt, vt = typing.get_args(hint) or (Any, Any)
        if not isinstance(value, Mapping):
            raise bad()
        return {check_value(k, kt, f"{name} key"): check_value(v, vt, f"{name}[{k!r}]")
                for k, v in value.items()}  # fmt: skip
    return value


def np_bool() -> type:
    import numpy as np

    return np.bool_


def np_integer() -> type:
    import numpy as np

    return np.integer


def np_number() -> type:
    import numpy as np

    return np.floating | np.integer  # type: ignore[return-value]


_HINTS: dict[type, dict[str, Any]] = {}


def type_hints(cls: type) -> dict[str, Any]:
    """``typing.get_type_hints(cls)``, evaluated once per class (configs are built often)."""
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def check_fields(cls: type, options: Mapping[str, Any], what: str) -> dict[str, Any]:
    """``options`` for dataclass ``cls`` with every value checked against its field's type hint
    (:func:`check_value`); keys that are not typed fields pass through."""
    try:
        hints = type_hints(cls)
    except NameError:  # annotations naming a local type: nothing to check against
        return dict(options)
    return {
        k: check_value(v, hints[k], f"{what}.{k}") if k in hints else v for k, v in options.items()
    }


def _plain(value: Any) -> Any:
    if isinstance(value, Config):
        return value.to_dict()
    if hasattr(value, "to_dict") and callable(value.to_dict):
        return value.to_dict()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


class Config:
    """Mixin for frozen dataclass configs (see module docstring)."""

    #: field name -> function building the field's value from its saved form.
    _decoders: ClassVar[dict[str, Callable[[Any], Any]]] = {}

    def to_dict(self) -> dict[str, Any]:
        return {
            f.name: _plain(getattr(self, f.name))
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
            if f.init and not f.name.startswith("_")
        }

    @classmethod
    def _field_types(cls) -> dict[str, Any]:
        return type_hints(cls)

    @classmethod
    def _sections(cls) -> dict[str, type[Config]]:
        """Fields that are nested configs: name -> config class."""
        out = {}
        for name, hint in cls._field_types().items():
            if isinstance(hint, type) and issubclass(hint, Config):
                out[name] = hint
        return out

    @classmethod
    def _init_fields(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None, *, what: str | None = None) -> Self:
        """Build from ``to_dict()`` output; an unknown key raises :class:`ConfigError`."""
        what = what or cls.__name__
        if d is None:
            d = {}
        if isinstance(d, cls):
            return d
        if not isinstance(d, Mapping):
            raise ConfigError(f"{what} must be a mapping of options, got {type(d).__name__}")
        fields = cls._init_fields()
        unknown = sorted(set(d) - set(fields))
        if unknown:
            raise ConfigError(
                f"unknown {what} option(s): {', '.join(map(str, unknown))} "
                f"(known: {', '.join(fields)})"
            )
        sections = cls._sections()
        hints = cls._field_types()
        kwargs: dict[str, Any] = {}
        for key, value in d.items():
            if key in cls._decoders:
                if not _is_decoded(value):
                    value = cls._decoders[key](value)
            elif key in sections:
                if not isinstance(value, Config):
                    value = sections[key].from_dict(value, what=f"{what}.{key}")
            else:
                value = check_value(value, hints[key], f"{what}.{key}")
            kwargs[key] = value
        try:
            return cls(**kwargs)
        except ConfigError:
            raise
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"invalid {what}: {exc}") from None

    @classmethod
    def from_flat(cls, d: Mapping[str, Any], *, what: str | None = None) -> Self:
        """Build from flat options: a key that is a section goes there whole; any other key
        goes to the one section with a field of that name (or is a field of this class)."""
        return cls().replace_flat(**d) if d else cls()  # type: ignore[call-arg]

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` (validated as by ``from_dict``)."""
        return type(self).from_dict({**self._shallow(), **changes})

    def replace_flat(self, **changes: Any) -> Self:
        """A copy with flat ``changes`` routed to their sections (see :meth:`from_flat`)."""
        cls = type(self)
        sections = cls._sections()
        own = set(cls._init_fields())
        routed: dict[str, dict[str, Any]] = {}
        top: dict[str, Any] = {}
        for key, value in changes.items():
            if key in own:
                top[key] = value
                continue
            homes = [s for s, scls in sections.items() if key in scls._init_fields()]
            if not homes:
                raise ConfigError(f"unknown {cls.__name__} option: {key}")
            if len(homes) > 1:
                raise ConfigError(
                    f"option {key} is ambiguous ({', '.join(homes)}); give it in its section"
                )
            routed.setdefault(homes[0], {})[key] = value
        new = {**self._shallow(), **top}
        for section, values in routed.items():
            current = new[section]
            if not isinstance(current, Config):
                current = sections[section].from_dict(current)
            new[section] = current.replace(**values)
        return cls.from_dict(new)

    def _shallow(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._init_fields()}


def _is_decoded(value: Any) -> bool:
    return not isinstance(value, Mapping | list | tuple | str | int | float | type(None))
