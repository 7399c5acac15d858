"""JSON form of GB/T 32960 frames and data units, driven by the model's dataclass type hints.

No per-class mapping: every value is converted by looking at the type the dataclass declares.

Conventions (also in docs/cli.md):

* dataclass → object with its own field names; when the declared type does not pin the class (a
  union, ``object``, the frame's ``body``, the top-level call) the object carries ``"type"``: the
  class name in snake_case (``VehicleLogin`` → ``"vehicle_login"``, ``VehicleData2025`` →
  ``"vehicle_data_2025"``). In a frame, info blocks also carry ``"info_type"``: the wire id for the
  frame's edition (informational, ignored on input; ``custom_block`` has it as a real field).
* ``Edition`` → 2016 | 2025; other enums → lowercase member name (a code the model keeps as a plain
  ``int`` stays an int); ``Special`` → ``"abnormal"`` / ``"invalid"``.
* flag enums (``enum.Flag``, e.g. alarm flags) → ``{"value": <int>, "names": [<set flags>]}``; on
  input ``value`` wins, ``names`` is used only when ``value`` is absent (a bare int or a list of
  names is accepted too).
* ``datetime`` → ISO 8601 in Beijing time (``+08:00``); input accepts any offset (no offset means
  Beijing time) and yields UTC, as the model keeps it.
* ``bytes`` → lowercase hex; tuples → lists; floats → shortest repr (round-trips exactly).

``from_json`` raises ``ProtocolError`` whose ``field`` is the JSON path (``data.blocks[0].speed``).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import re
import sys
import types
import typing
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from enum import Enum, Flag
from typing import Any, TypeVar

from agent.protocol import model
from agent.protocol.errors import ProtocolError
from agent.protocol.model import Command, Edition, Encryption, Frame, ResponseFlag, Special

__all__ = [
    "BEIJING",
    "frame_from_json",
    "frame_to_json",
    "from_json",
    "info_types",
    "json_type_name",
    "model_classes",
    "to_json",
]

BEIJING = timezone(timedelta(hours=8), "Beijing")
T = TypeVar("T")

#: top-level keys of a frame object, in output order
FRAME_KEYS = ("edition", "command", "response", "vin", "encryption", "length", "data")
#: informational keys accepted (and ignored) in any dataclass object
_INFO_KEYS = ("type", "info_type")


# --------------------------------------------------------------------------- names and registry


_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])|(?<=[A-Za-z])(?=[0-9])")


def json_type_name(cls: type) -> str:
    """The ``"type"`` discriminator of a dataclass: its name in snake_case."""
    return _CAMEL_BOUNDARY.sub("_", cls.__name__).lower()


_REGISTRY: dict[str, type] = {}
_SCANNED: set[str] = set()


def model_classes() -> dict[str, type]:
    """Every dataclass of the loaded ``agent.protocol.model*`` modules, by ``"type"`` name."""
    for name, mod in list(sys.modules.items()):
        if mod is None or name in _SCANNED or not name.startswith(model.__name__):
            continue
        _SCANNED.add(name)
        for value in list(vars(mod).values()):
            if isinstance(value, type) and dataclasses.is_dataclass(value):
                _REGISTRY.setdefault(json_type_name(value), value)
    return _REGISTRY


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = typing.get_type_hints(cls)
        _HINTS[cls] = hints
    return hints


_InfoTypes = dict[type, int]
_NO_INFO_TYPES: _InfoTypes = {}


def _info_type(cls: type, info_types: _InfoTypes) -> int | None:
    if any(f.name == "info_type" for f in dataclasses.fields(cls)):
        return None  # a field of its own (custom_block)
    return info_types.get(cls)


def _codec() -> Any:
    try:
        return importlib.import_module("agent.protocol.codec")
    except ImportError:  # the codec is optional for this module
        return None


def info_types(edition: Edition | int) -> dict[type, int]:
    """Info-block class -> wire info type id for ``edition``, from the codec's tables (empty without one)."""
    return dict(_ids(edition))


def _ids(edition: Edition | int) -> _InfoTypes:
    found = _INFO_TYPES_CACHE.get(int(edition))
    if found is None:
        found = _INFO_TYPES_CACHE[int(edition)] = _load_info_types(edition)
    return found


_INFO_TYPES_CACHE: dict[int, dict[type, int]] = {}


def _load_info_types(edition: Edition | int) -> dict[type, int]:
    codec = _codec()
    public = getattr(codec, "info_type_ids", None)
    if callable(public):
        return dict(public(edition))
    # codec._ENCODERS: edition -> {block class: (info type id, encoder, field name)}
    table = getattr(codec, "_ENCODERS", None)
    if not isinstance(table, dict):
        return {}
    try:
        entries = table.get(Edition(edition), {})
    except ValueError:
        return {}
    return {cls: int(entry[0]) for cls, entry in entries.items()}


# --------------------------------------------------------------------------- model -> JSON


def to_json(value: object, *, edition: Edition | int | None = None) -> Any:
    """JSON-ready form (dicts, lists, str, int, float, bool, None) of any model value.

    With ``edition``, info blocks also carry their wire ``info_type`` (ids differ between editions).
    """
    return _encode(value, object, _ids(edition) if edition is not None else _NO_INFO_TYPES)


def frame_to_json(frame: Frame, *, length: int | None = None) -> dict[str, Any]:
    """The JSON object of a frame; ``length`` is the data-unit length (computed when not given)."""
    if length is None:
        length = _encoded_length(frame)
    ids = _ids(frame.edition)
    out: dict[str, Any] = {
        "edition": int(frame.edition),
        "command": _encode(frame.command, object, ids),
        "response": _encode(frame.response, object, ids),
        "vin": frame.vin,
        "encryption": _encode(frame.encryption, object, ids),
    }
    if length is not None:
        out["length"] = length
    out["data"] = _encode(frame.body, object, ids)
    return out


def _encoded_length(frame: Frame) -> int | None:
    encode: Callable[[Frame], bytes] | None = getattr(_codec(), "encode_frame", None)
    if encode is None:
        return None
    try:
        return len(encode(frame)) - 25
    except ProtocolError:  # e.g. an encrypted unit without its cipher: leave the length out
        return None


def _dataclass_to_json(value: Any, tagged: bool, ids: _InfoTypes) -> dict[str, Any]:
    cls = type(value)
    hints = _hints(cls)
    out: dict[str, Any] = {}
    if tagged:
        out["type"] = json_type_name(cls)
        info_type = _info_type(cls, ids)
        if info_type is not None:
            out["info_type"] = info_type
    for f in dataclasses.fields(value):
        out[f.name] = _encode(getattr(value, f.name), hints.get(f.name, object), ids)
    return out


def _encode(value: object, tp: Any, ids: _InfoTypes) -> Any:
    if isinstance(value, str | bytes) and _is_union(tp):
        return _encode_in_union(value, tp)
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, Special):
        return value.value
    if isinstance(value, Edition):
        return int(value)
    if isinstance(value, Flag):
        flag_cls = type(value)
        names = [m.name.lower() for m in flag_cls if m.name and m.value and (value & m) == m]
        return {"value": int(value), "names": names}  # type: ignore[call-overload]
    if isinstance(value, Enum):
        return value.name.lower()
    if isinstance(value, int | float):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(BEIJING).isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _dataclass_to_json(value, tp is not type(value), ids)
    if isinstance(value, tuple | list):
        item_tp = _item_type(tp)
        return [_encode(item, item_tp(index), ids) for index, item in enumerate(value)]
    if isinstance(value, dict):
        return {str(key): _encode(item, object, ids) for key, item in value.items()}
    raise ProtocolError(f"cannot express {type(value).__name__} in JSON", None, None)


def _encode_in_union(value: str | bytes, tp: Any) -> Any:
    # A string or bytes value whose plain JSON string would read back as another member of the union
    # (a str "invalid" next to Special, bytes next to str) is written as {"text": ...} / {"hex": ...}.
    plain = value if isinstance(value, str) else value.hex()
    try:
        same = _decode(tp, plain, "") == value
    except ProtocolError:
        same = False
    if same:
        return plain
    return {"text": value} if isinstance(value, str) else {"hex": plain}


def _item_type(tp: Any) -> Callable[[int], Any]:
    if _is_union(tp):
        sequences = [arg for arg in typing.get_args(tp) if typing.get_origin(arg) in (tuple, list)]
        tp = sequences[0] if len(sequences) == 1 else object
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (tuple, list) and args:
        if (len(args) == 2 and args[1] is Ellipsis) or typing.get_origin(tp) is list:
            return lambda _index: args[0]
        return lambda index: args[index] if index < len(args) else object
    return lambda _index: object


# --------------------------------------------------------------------------- JSON -> model


def _kind(obj: object) -> str:
    if obj is None:
        return "null"
    if isinstance(obj, bool):
        return "boolean"
    if isinstance(obj, int | float):
        return "number"
    if isinstance(obj, str):
        return "string"
    if isinstance(obj, list):
        return "array"
    if isinstance(obj, dict):
        return "object"
    return type(obj).__name__


def _fail(path: str, reason: str) -> ProtocolError:
    return ProtocolError(reason, None, path or None)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def from_json(tp: type[T] | Any, obj: object, *, path: str = "") -> T:
    """The model value of type ``tp`` that ``obj`` (parsed JSON) describes; ``ProtocolError`` if bad."""
    return typing.cast(T, _decode(tp, obj, path))


def frame_from_json(obj: object) -> Frame:
    """The ``Frame`` that a JSON frame object describes (``length`` is ignored)."""
    if not isinstance(obj, dict):
        raise _fail("", f"a frame must be a JSON object, got {_kind(obj)}")
    unknown = sorted(set(obj) - set(FRAME_KEYS))
    if unknown:
        raise _fail(unknown[0], f"unknown key (expected {', '.join(FRAME_KEYS)})")
    for key in ("edition", "command", "response", "vin"):
        if key not in obj:
            raise _fail(key, "missing")
    return Frame(
        edition=_decode(Edition, obj["edition"], "edition"),
        command=_decode(Command | int, obj["command"], "command"),
        response=_decode(ResponseFlag | int, obj["response"], "response"),
        vin=_decode(str, obj["vin"], "vin"),
        encryption=_decode(Encryption | int, obj.get("encryption", "none"), "encryption"),
        body=_decode(object, obj.get("data", {"type": "empty"}), "data"),
    )


@functools.cache
def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _accepts(tp: Any, obj: object) -> bool:
    """Whether a JSON value of ``obj``'s kind can possibly describe a ``tp``."""
    kind = _kind(obj)
    kinds = _kinds(tp)
    if kind in kinds:
        return True
    # {"text": ...} / {"hex": ...}: the explicit forms of a str / bytes in an ambiguous union
    return kind == "object" and len(typing.cast(dict[str, Any], obj)) == 1 and (
        ("text" in kinds and "text" in typing.cast(dict[str, Any], obj))
        or ("hex" in kinds and "hex" in typing.cast(dict[str, Any], obj))
    )


@functools.cache
def _kinds(tp: Any) -> frozenset[str]:
    """The JSON kinds (see ``_kind``) that can describe a ``tp``, plus "text"/"hex" for str/bytes."""
    if tp is Any or tp is object:
        return frozenset({"object"})
    if tp is type(None):
        return frozenset({"null"})
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return frozenset(_kind(arg) for arg in typing.get_args(tp))
    if origin in (tuple, list):
        return frozenset({"array"})
    if origin is dict:
        return frozenset({"object"})
    if not isinstance(tp, type):
        return frozenset()
    if issubclass(tp, bool):
        return frozenset({"boolean"})
    if issubclass(tp, Edition):
        return frozenset({"number", "string"})
    if issubclass(tp, Flag):
        return frozenset({"number", "object", "array"})
    if issubclass(tp, Enum):
        return frozenset({"string", "number"} if issubclass(tp, int) else {"string"})
    if issubclass(tp, int | float):
        return frozenset({"number"})
    if issubclass(tp, str):
        return frozenset({"string", "text"})
    if issubclass(tp, bytes):
        return frozenset({"string", "hex"})
    if issubclass(tp, datetime):
        return frozenset({"string"})
    if dataclasses.is_dataclass(tp):
        return frozenset({"object"})
    return frozenset()


def _priority(tp: Any) -> int:
    # Sentinels and enums before free-form strings and numbers, so "invalid" is never a str.
    if isinstance(tp, type):
        if issubclass(tp, Special):
            return 0
        if issubclass(tp, Enum):
            return 1
    return 2


def _describe(tp: Any) -> str:
    if _is_union(tp):
        return " or ".join(_describe(arg) for arg in typing.get_args(tp))
    if tp is type(None):
        return "null"
    if isinstance(tp, type):
        if dataclasses.is_dataclass(tp):
            return json_type_name(tp)
        if issubclass(tp, Special):
            return '"abnormal"/"invalid"'
        return tp.__name__
    return str(tp)


def _decode(tp: Any, obj: object, path: str) -> Any:
    if _is_union(tp):
        return _decode_union(tp, obj, path)
    if tp is Any or tp is object:
        return _decode_any_dataclass(obj, path)
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        if obj in typing.get_args(tp) and not isinstance(obj, bool):
            return obj
        raise _fail(path, f"expected one of {list(typing.get_args(tp))}, got {obj!r}")
    if origin in (tuple, list):
        return _decode_sequence(tp, origin, obj, path)
    if origin is dict:
        if not isinstance(obj, dict):
            raise _fail(path, f"expected an object, got {_kind(obj)}")
        key_tp, value_tp = typing.get_args(tp) or (str, object)
        return {
            _decode(key_tp, key, path): _decode(value_tp, value, f"{path}[{key!r}]")
            for key, value in obj.items()
        }
    if tp is type(None):
        if obj is None:
            return None
        raise _fail(path, f"expected null, got {_kind(obj)}")
    if not isinstance(tp, type):
        raise _fail(path, f"unsupported type {tp!r}")
    if dataclasses.is_dataclass(tp):
        return _decode_dataclass(tp, obj, path)
    if not _accepts(tp, obj):
        raise _fail(path, f"expected {_describe(tp)}, got {_kind(obj)}")
    if issubclass(tp, bool):
        return obj
    if issubclass(tp, Edition):
        return _decode_edition(obj, path)
    if issubclass(tp, Special):
        return _decode_special(typing.cast(str, obj), path)
    if issubclass(tp, Flag):
        return _decode_flag(tp, obj, path)
    if issubclass(tp, Enum):
        return _decode_enum(tp, obj, path)
    if issubclass(tp, float):
        try:
            return float(typing.cast(float, obj))
        except OverflowError:
            raise _fail(path, "number too large for a float") from None
    if issubclass(tp, int):
        if isinstance(obj, float):
            if not obj.is_integer():
                raise _fail(path, f"expected an integer, got {obj!r}")
            obj = int(obj)
        return tp(typing.cast(int, obj))
    if issubclass(tp, str):
        if isinstance(obj, dict):
            return _decode(str, obj["text"], _join(path, "text"))
        return obj
    if issubclass(tp, bytes):
        if isinstance(obj, dict):
            return _decode(bytes, obj["hex"], _join(path, "hex"))
        return _decode_bytes(typing.cast(str, obj), path)
    if issubclass(tp, datetime):
        return _decode_datetime(typing.cast(str, obj), path)
    raise _fail(path, f"unsupported type {tp.__name__}")


@dataclasses.dataclass(frozen=True)
class _Union:
    members: tuple[Any, ...]            # sentinels and enums first (see _priority)
    classes: tuple[type, ...]           # the dataclass members
    by_tag: dict[str, type]             # their "type" names


@functools.cache
def _union(tp: Any) -> _Union:
    args = typing.get_args(tp)
    classes = tuple(arg for arg in args if _is_dataclass_type(arg))
    return _Union(
        tuple(sorted(args, key=_priority)), classes, {json_type_name(cls): cls for cls in classes}
    )


def _decode_union(tp: Any, obj: object, path: str) -> Any:
    union = _union(tp)
    if union.classes and isinstance(obj, dict) and not _is_wrapper(obj):
        return _decode_tagged(union, obj, path)
    members = [arg for arg in union.members if _accepts(arg, obj)]
    if not members:
        raise _fail(path, f"expected {_describe(tp)}, got {_kind(obj)}")
    first_error: ProtocolError | None = None
    for member in members:
        try:
            return _decode(member, obj, path)
        except ProtocolError as exc:
            if first_error is None:
                first_error = exc
    assert first_error is not None
    raise first_error


def _is_wrapper(obj: dict[str, Any]) -> bool:
    return len(obj) == 1 and ("text" in obj or "hex" in obj)


def _decode_tagged(union: _Union, obj: dict[str, Any], path: str) -> Any:
    tag = obj.get("type")
    if tag is None:
        if len(union.classes) == 1:
            return _decode_dataclass(union.classes[0], obj, path)
        raise _fail(_join(path, "type"), f"missing; one of {', '.join(union.by_tag)}")
    cls = union.by_tag.get(tag) if isinstance(tag, str) else None
    if cls is None:
        raise _fail(_join(path, "type"), f"{tag!r} is not one of {', '.join(union.by_tag)}")
    return _decode_dataclass(cls, obj, path)


def _decode_any_dataclass(obj: object, path: str) -> Any:
    if not isinstance(obj, dict):
        raise _fail(path, f"expected an object with a \"type\", got {_kind(obj)}")
    tag = obj.get("type")
    if not isinstance(tag, str):
        raise _fail(_join(path, "type"), "missing (the data unit's class name in snake_case)")
    cls = model_classes().get(tag)
    if cls is None:
        raise _fail(_join(path, "type"), f"unknown type {tag!r}")
    return _decode_dataclass(cls, obj, path)


def _decode_dataclass(cls: type, obj: object, path: str) -> Any:
    if not isinstance(obj, dict):
        raise _fail(path, f"expected a {json_type_name(cls)} object, got {_kind(obj)}")
    tag = obj.get("type")
    if tag is not None and tag != json_type_name(cls):
        raise _fail(_join(path, "type"), f"expected {json_type_name(cls)!r}, got {tag!r}")
    hints = _hints(cls)
    fields = dataclasses.fields(cls)
    init_names = {f.name for f in fields if f.init}
    derived = {f.name for f in fields if not f.init}
    for key in obj:
        if key not in init_names and key not in derived and key not in _INFO_KEYS:
            raise _fail(_join(path, str(key)), f"unknown field of {json_type_name(cls)}")
    kwargs: dict[str, Any] = {}
    for f in fields:
        if not f.init:
            continue
        if f.name not in obj:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise _fail(_join(path, f.name), "missing")
            continue
        kwargs[f.name] = _decode(hints.get(f.name, Any), obj[f.name], _join(path, f.name))
    try:
        return cls(**kwargs)
    except ProtocolError:
        raise
    except (ValueError, TypeError) as exc:
        raise _fail(path, f"invalid {json_type_name(cls)}: {exc}") from exc


def _decode_sequence(tp: Any, origin: Any, obj: object, path: str) -> Any:
    if not isinstance(obj, list):
        raise _fail(path, f"expected an array, got {_kind(obj)}")
    args = typing.get_args(tp)
    if origin is list or (len(args) == 2 and args[1] is Ellipsis) or not args:
        item_tp = args[0] if args else Any
        items = [_decode(item_tp, item, f"{path}[{index}]") for index, item in enumerate(obj)]
    else:
        if len(obj) != len(args):
            raise _fail(path, f"expected {len(args)} items, got {len(obj)}")
        pairs = enumerate(zip(args, obj, strict=True))
        items = [_decode(arg, item, f"{path}[{index}]") for index, (arg, item) in pairs]
    return items if origin is list else tuple(items)


def _decode_edition(obj: object, path: str) -> Edition:
    try:
        return Edition(int(typing.cast(int | str, obj)))
    except (ValueError, OverflowError):  # not a number; inf
        raise _fail(path, f"edition must be 2016 or 2025, got {obj!r}") from None


def _decode_special(obj: str, path: str) -> Special:
    try:
        return Special(obj.lower())
    except ValueError:
        raise _fail(path, f'expected "abnormal" or "invalid", got {obj!r}') from None


def _decode_enum(tp: type[Enum], obj: object, path: str) -> Enum:
    if isinstance(obj, str):
        member = tp.__members__.get(obj.upper())
        if member is None:
            names = ", ".join(name.lower() for name in tp.__members__)
            raise _fail(path, f"unknown {tp.__name__} {obj!r} (one of {names})")
        return member
    try:
        return tp(obj)
    except ValueError:
        raise _fail(path, f"{obj!r} is not a {tp.__name__} code") from None


def _decode_flag(tp: type[Flag], obj: object, path: str) -> Flag:
    if isinstance(obj, dict):
        unknown = sorted(set(obj) - {"value", "names"})
        if unknown:
            raise _fail(_join(path, str(unknown[0])), "unknown key (expected value, names)")
        if "value" in obj:
            return _decode_flag(tp, obj["value"], _join(path, "value"))
        if "names" in obj:
            return _decode_flag(tp, obj["names"], _join(path, "names"))
        raise _fail(path, "needs \"value\" or \"names\"")
    if isinstance(obj, list):
        value = tp(0)
        for index, name in enumerate(obj):
            if not isinstance(name, str) or name.upper() not in tp.__members__:
                raise _fail(f"{path}[{index}]", f"unknown {tp.__name__} flag {name!r}")
            value |= tp.__members__[name.upper()]
        return value
    if isinstance(obj, int) and not isinstance(obj, bool):
        try:
            return tp(obj)
        except ValueError:
            raise _fail(path, f"{obj!r} is not a valid {tp.__name__} value") from None
    raise _fail(path, f"expected a {tp.__name__} value, got {_kind(obj)}")


def _decode_bytes(obj: str, path: str) -> bytes:
    text = obj.strip()
    if text[:2].lower() == "0x":
        text = text[2:]
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise _fail(path, f"not a hex string: {obj[:40]!r}") from None


def _decode_datetime(obj: str, path: str) -> datetime:
    try:
        value = datetime.fromisoformat(obj)
    except ValueError:
        raise _fail(path, f"not an ISO 8601 date-time: {obj[:40]!r}") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=BEIJING)
    return value.astimezone(UTC)
