"""Loading DBC (and KCD, SYM, ARXML) files with cantools, with errors that name the file and line.

``load_dbc(paths)`` merges several files into one database (a vehicle often has one DBC per bus or per
supplier); two messages with the same identifier (cache key) or name in different files are an error
in strict mode. ``mux_selector(message)`` compiles the extractor of a message's multiplexer value used
by the cache's hot path.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cantools
import cantools.database
import cantools.database.errors
import textparser

from agent.canbus.cache import MuxSelector, message_key
from agent.canbus.decode import bytes_needed, raw_expression, sequential_start
from agent.errors import MappingError

log = logging.getLogger(__name__)

_ADDERS = {".dbc": "add_dbc_string", ".kcd": "add_kcd_string", ".sym": "add_sym_string"}


def _line_of(text: str, reason: str) -> int | None:
    """Best-effort line of a semantic cantools error: the first signal or message it names."""
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", reason))
    fallback: int | None = None
    for number, line in enumerate(text.splitlines(), 1):
        found = re.match(r"\s*(SG_|BO_\s+\d+)\s+([A-Za-z0-9_]+)", line)
        if found and found.group(2) in words:
            if found.group(1) == "SG_":
                return number
            fallback = fallback or number
    return fallback


def _load_one(path: Path, strict: bool) -> Any:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise MappingError(f"{path}: cannot read: {exc.strerror}") from exc
    text = raw.decode("cp1252", errors="replace")  # DBC files are usually cp1252, not UTF-8
    db = cantools.database.can.Database(strict=strict)
    suffix = path.suffix.lower()
    try:
        if suffix == ".arxml":
            db.add_arxml_string(raw.decode("utf-8", errors="replace"))
        else:
            getattr(db, _ADDERS.get(suffix, "add_dbc_string"))(text)
    except (cantools.database.errors.Error, ValueError, KeyError, IndexError) as exc:
        line = getattr(exc, "line", None)
        if not isinstance(line, int):
            line = _line_of(text, str(exc))
        where = f"{path}:{line}" if line else str(path)
        raise MappingError(f"{where}: {exc}") from exc
    except textparser.ParseError as exc:  # syntax errors carry line and column
        raise MappingError(f"{path}:{exc.line}: {exc}") from exc
    return db


def load_dbc(paths: Sequence[str | Path], *, strict: bool = True) -> cantools.database.can.Database:
    """Load and merge CAN databases; ``MappingError`` names the file (and line when known).

    ``strict`` is cantools' strict mode (overlapping or out-of-frame signals are errors) and also makes
    duplicate messages across files an error (otherwise the later file wins, with a warning).
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    if not paths:
        raise MappingError("no DBC file given")
    if len(paths) == 1:  # one file: cantools' database as loaded (keeps its DBC attribute definitions)
        single: cantools.database.can.Database = _load_one(Path(paths[0]), strict)
        return single
    messages: dict[int, tuple[Any, Path]] = {}
    names: dict[str, Path] = {}
    nodes: dict[str, Any] = {}
    for item in paths:
        path = Path(item)
        db = _load_one(path, strict)
        for node in db.nodes:
            nodes.setdefault(node.name, node)
        for message in db.messages:
            key = message_key(message)
            if key in messages or message.name in names:
                other = messages[key][1] if key in messages else names[message.name]
                reason = f"message {message.name} (id {message.frame_id:#x}) is also defined in {other}"
                if strict:
                    raise MappingError(f"{path}: {reason}")
                log.warning("%s: %s; this definition wins", path, reason)
                old = messages.pop(key, None)
                if old is not None:
                    names.pop(old[0].name, None)
            messages[key] = (message, path)
            names[message.name] = path
    return cantools.database.can.Database(
        messages=[m for m, _ in messages.values()], nodes=list(nodes.values()), strict=strict
    )


def mux_selector(message: Any) -> MuxSelector | None:
    """A compiled extractor of the message's (top-level) multiplexer value, or ``None`` if not muxed.

    Works for any start bit, length and byte order; raises ``IndexError`` when the payload is too short
    to carry the value (the cache counts that frame as malformed).
    """
    selector = next((s for s in message.signals if s.is_multiplexer and not s.multiplexer_ids), None)
    if selector is None:
        return None
    need = bytes_needed(selector)
    expr = raw_expression(selector)
    lines = ["def select(d):"]
    if selector.length == 8 and sequential_start(selector) == 0:
        lines.append("    return d[0]")  # the usual layout: a whole first byte (IndexError if empty)
    else:
        lines.append("    n = len(d)")
        lines.append(f"    if n < {need}:")
        lines.append("        raise IndexError('payload too short for the multiplexer')")
        if "L" in expr:
            lines.append("    L = int.from_bytes(d, 'little')")
        else:
            lines.append("    B = int.from_bytes(d, 'big')")
            lines.append("    n8 = n << 3")
        lines.append(f"    return {expr}")
    namespace: dict[str, Any] = {}
    exec(compile("\n".join(lines), f"<mux {message.name}>", "exec"), namespace)
    select: MuxSelector = namespace["select"]
    return select


__all__ = ["load_dbc", "mux_selector"]
