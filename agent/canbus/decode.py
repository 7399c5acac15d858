"""Fast decoding of only the wanted signals of a message, at sampling time.

``compile_decoder(message, names, mux)`` generates (once) a small Python function doing plain integer
arithmetic for just those signals: one ``int.from_bytes`` of the payload per byte order, then a shift
and a mask per signal, sign extension, IEEE float reinterpretation and scaling. Its results are equal,
value and type, to ``cantools`` ``Message.decode(data, decode_choices=False, allow_truncated=True)``
restricted to the same signals (proved by hypothesis tests over every signal of our DBC and of a test
DBC with Motorola, signed, float, 29-bit and CAN FD messages).

Short data never raises: a signal whose bits are not all inside the payload is left out of the result
(the caller treats a missing key as "frame too short" → invalid). A payload longer than the message is
decoded as cantools does with ``allow_excess`` (extra bytes ignored).

``raw=True`` returns the unsigned raw bit pattern of each signal instead (no sign extension, no float
reinterpretation, no scaling): compare it with ``all_ones(signal)`` to detect the common "signal not
available" convention.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Any

from cantools.database.conversion import BaseConversion, IdentityConversion, LinearIntegerConversion

from agent.errors import MappingError

#: A compiled decoder: payload -> {signal name: value}.
Decoder = Callable[[bytes], dict[str, float | int]]

_F32 = struct.Struct("<f")
_F64 = struct.Struct("<d")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


def _f32(raw: int) -> float:
    return float(_F32.unpack(_U32.pack(raw))[0])


def _f64(raw: int) -> float:
    return float(_F64.unpack(_U64.pack(raw))[0])


def all_ones(signal: Any) -> int:
    """The raw all-ones value of a signal (the usual SNA code), as returned by a ``raw=True`` decoder."""
    return (1 << int(signal.length)) - 1


def sequential_start(signal: Any) -> int:
    """The signal's first bit in cantools' sequential numbering (LSB for Intel, MSB for Motorola)."""
    start = int(signal.start)
    if signal.byte_order == "little_endian":
        return start
    return 8 * (start // 8) + (7 - start % 8)


def bytes_needed(signal: Any) -> int:
    """How many payload bytes must be present for the signal to be decodable."""
    return (sequential_start(signal) + int(signal.length) + 7) // 8


def raw_expression(signal: Any) -> str:
    """Python expression of the signal's unsigned raw value, over ``L`` (little-endian int of the
    payload) or ``B`` (big-endian int) and ``n8`` (payload bits)."""
    mask = (1 << int(signal.length)) - 1
    if signal.byte_order == "little_endian":
        start = int(signal.start)
        return f"((L >> {start}) & {mask:#x})" if start else f"(L & {mask:#x})"
    end = sequential_start(signal) + int(signal.length)
    return f"((B >> (n8 - {end})) & {mask:#x})"


def _value_expression(signal: Any, index: int, consts: dict[str, Any]) -> str:
    expr = raw_expression(signal)
    length = int(signal.length)
    is_float = bool(signal.is_float)
    if is_float:
        if length == 32:
            expr = f"_f32({expr})"
        elif length == 64:
            expr = f"_f64({expr})"
        else:
            raise MappingError(f"signal {signal.name}: float of {length} bits is not supported")
    elif signal.is_signed:
        half = 1 << (length - 1)
        expr = f"(({expr} ^ {half:#x}) - {half:#x})"
    conv = signal.conversion
    inner = BaseConversion.factory(scale=conv.scale, offset=conv.offset, choices=None, is_float=is_float)
    if isinstance(inner, IdentityConversion):
        return expr
    scale: float | int = inner.scale
    offset: float | int = inner.offset
    if isinstance(inner, LinearIntegerConversion):
        scale, offset = int(scale), int(offset)
    consts[f"S{index}"] = scale
    consts[f"O{index}"] = offset
    return f"{expr} * S{index} + O{index}"


def _signals(message: Any, names: Sequence[str], mux: int | None) -> list[Any]:
    found = []
    for name in names:
        try:
            sig = message.get_signal_by_name(name)
        except KeyError:
            raise MappingError(f"message {message.name}: no signal {name!r}") from None
        ids = sig.multiplexer_ids
        if ids and (mux is None or mux not in ids):
            want = "a mux value" if mux is None else f"mux {mux}"
            raise MappingError(
                f"message {message.name}: signal {name} is multiplexed (mux {ids}), decoder is for {want}"
            )
        found.append(sig)
    return found


def compile_extractor(signals: Sequence[Any], *, raw: bool, check: str = "", label: str = "decoder") -> Any:
    """Compile ``payload -> {name: value}`` for cantools ``signals`` (see the module docstring).

    ``check``: an optional Python condition on ``d``/``L``/``B``/``n8`` that must hold or ``{}`` is
    returned (used for the mux value).
    """
    consts: dict[str, Any] = {"_f32": _f32, "_f64": _f64}
    exprs: list[tuple[str, str, int]] = []
    for i, sig in enumerate(signals):
        expr = raw_expression(sig) if raw else _value_expression(sig, i, consts)
        exprs.append((sig.name, expr, bytes_needed(sig)))
    little = any(s.byte_order == "little_endian" for s in signals) or "L" in check
    big = any(s.byte_order != "little_endian" for s in signals) or "B" in check
    lines = ["def decode(d):", "    n = len(d)"]
    if little:
        lines.append("    L = int.from_bytes(d, 'little')")
    if big:
        lines.append("    B = int.from_bytes(d, 'big')")
        lines.append("    n8 = n << 3")
    if check:
        lines.append(f"    if not ({check}):")
        lines.append("        return {}")
    need = max((e[2] for e in exprs), default=0)
    body = ", ".join(f"{name!r}: {expr}" for name, expr, _ in exprs)
    lines.append(f"    if n >= {need}:")
    lines.append(f"        return {{{body}}}")
    lines.append("    out = {}")
    for name, expr, needed in exprs:
        lines.append(f"    if n >= {needed}:")
        lines.append(f"        out[{name!r}] = {expr}")
    lines.append("    return out")
    namespace = dict(consts)
    exec(compile("\n".join(lines), f"<{label}>", "exec"), namespace)
    return namespace["decode"]


def compile_decoder(
    message: Any, signal_names: Sequence[str], mux: int | None = None, *, raw: bool = False
) -> Decoder:
    """Compile a decoder of ``signal_names`` of a cantools ``message`` (multiplexed ones: of ``mux``).

    The result maps a payload to ``{name: value}``, equal to cantools' ``decode_choices=False`` values;
    signals not fully inside a short payload are absent; with ``mux`` given, a payload carrying another
    mux value (or too short to carry one) decodes to ``{}``. ``raw=True``: unsigned raw bit patterns.
    Raises ``MappingError`` for an unknown signal or a multiplexed signal not of ``mux``.
    """
    signals = _signals(message, signal_names, mux)
    check = ""
    if mux is not None:
        selector = _top_multiplexer(message)
        if selector is None:
            raise MappingError(f"message {message.name}: not multiplexed, yet mux {mux} given")
        check = f"n >= {bytes_needed(selector)} and {raw_expression(selector)} == {mux}"
    decoder: Decoder = compile_extractor(signals, raw=raw, check=check, label=f"decoder {message.name}")
    return decoder


def _top_multiplexer(message: Any) -> Any | None:
    """The message's top-level multiplexer signal, or ``None``."""
    for sig in message.signals:
        if sig.is_multiplexer and not sig.multiplexer_ids:
            return sig
    return None


__all__ = [
    "Decoder",
    "all_ones",
    "bytes_needed",
    "compile_decoder",
    "compile_extractor",
    "raw_expression",
    "sequential_start",
]
