"""The latest-frame cache: the agent's CAN hot path.

A frame's arrival only stores its raw bytes and timestamp by key (and by multiplexer value for
multiplexed messages); decoding happens at sampling time (``agent.canbus.decode``), only for the mapped
signals. ``FrameCache.put`` is O(1): one dict lookup, one length comparison, one tuple stored. It never
logs, never decodes, never raises on odd input, and its cost does not grow with bus load or with the
number of ids.

Cache key: the 11-bit or 29-bit arbitration id, with bit 31 set for extended (29-bit) ids
(``frame_key(0x123, False) == 0x123``, ``frame_key(0x123, True) == 0x80000123``), so a standard and an
extended frame with the same numeric id never collide. ``message_key(cantools_message)`` gives the key
of a DBC message.

Threading: one writer (the source's reader thread) and any number of readers. Every entry is an
immutable tuple replaced in one dict store, so a reader always sees a consistent frame without locks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

#: Bit set in a cache key for an extended (29-bit) identifier.
EXTENDED_FLAG = 1 << 31
#: Mask of the identifier bits of a key.
ID_MASK = 0x1FFFFFFF

#: Distinct unwanted ids counted one by one; beyond this they share one counter (memory stays bounded
#: whatever garbage the bus carries).
MAX_UNWANTED_IDS = 1024

#: Multiplexer-value extractor: raw payload -> mux value (raises IndexError on a too-short payload).
MuxSelector = Callable[[bytes], int]


def frame_key(arbitration_id: int, is_extended: bool) -> int:
    """The cache key of an identifier: the id, with ``EXTENDED_FLAG`` for a 29-bit id."""
    return arbitration_id | EXTENDED_FLAG if is_extended else arbitration_id


def message_key(message: Any) -> int:
    """The cache key of a cantools message (``frame_id`` and ``is_extended_frame``)."""
    return frame_key(int(message.frame_id), bool(message.is_extended_frame))


def split_key(key: int) -> tuple[int, bool]:
    """(arbitration id, is_extended) of a cache key."""
    return key & ID_MASK, bool(key & EXTENDED_FLAG)


class CachedFrame(NamedTuple):
    """The latest frame of one key (and mux value), with the one before it.

    ``count`` is how many frames of this key (and mux value) have arrived since the cache was made;
    ``previous``/``previous_timestamp`` are ``None`` until the second one.
    """

    data: bytes
    timestamp: float
    previous: bytes | None
    previous_timestamp: float | None
    count: int  # type: ignore[assignment]  # shadows tuple.count on purpose (the API name)


@dataclass(frozen=True)
class CacheStats:
    """A snapshot of the cache's counters (``FrameCache.stats``)."""

    #: every frame given to ``put`` (wanted or not)
    frames: int = 0
    #: frames whose id was not wanted (only counted, not stored)
    unwanted: int = 0
    #: error frames reported with ``put_error``
    error_frames: int = 0
    #: remote (RTR) frames reported with ``put_remote``
    remote_frames: int = 0
    #: stored frames shorter than their DBC length (signals beyond the data decode as missing)
    short: int = 0
    #: multiplexed frames too short to carry their multiplexer value (dropped)
    no_mux: int = 0
    #: frames per wanted key (stored), and per unwanted key (the first ``MAX_UNWANTED_IDS`` keys seen)
    by_id: Mapping[int, int] = field(default_factory=dict)
    unwanted_by_id: Mapping[int, int] = field(default_factory=dict)

    @property
    def malformed(self) -> int:
        """Frames that did not match their definition (too short, or no mux value)."""
        return self.short + self.no_mux


# An entry: (data, timestamp, previous, previous_timestamp, count, min_length, mux selector or None).
_Entry = tuple[bytes, float, "bytes | None", "float | None", int, int, "MuxSelector | None"]
_MuxEntry = tuple[bytes, float, "bytes | None", "float | None", int]


class FrameCache:
    """Latest raw frame per key (and per mux value), with the previous one and a count.

    ``wanted_ids``: the keys to store (see ``frame_key``); ``None`` stores every key. ``mux``: key ->
    selector of the multiplexer value (``agent.canbus.dbcload.mux_selector``); frames of those keys are
    also stored per mux value. ``lengths``: key -> DBC length; a shorter frame is stored (its missing
    signals then decode as absent) and counted in ``stats.short``.
    """

    def __init__(
        self,
        wanted_ids: Iterable[int] | None = None,
        mux: Mapping[int, MuxSelector] | None = None,
        lengths: Mapping[int, int] | None = None,
    ) -> None:
        self._mux_selectors: dict[int, MuxSelector] = dict(mux or {})
        self._lengths: dict[int, int] = dict(lengths or {})
        self._accept_all = wanted_ids is None
        self._latest: dict[int, _Entry] = {}
        self._muxed: dict[int, dict[int, _MuxEntry]] = {}
        self._wanted: frozenset[int] = frozenset(wanted_ids) if wanted_ids is not None else frozenset()
        self._unwanted: dict[int, int] = {}
        self._unwanted_other = 0
        self._errors = 0
        self._remote = 0
        self._short = 0
        self._no_mux = 0
        self.last_error_timestamp: float | None = None

    @property
    def wanted_ids(self) -> frozenset[int] | None:
        """The keys stored (``None``: every key)."""
        return None if self._accept_all else self._wanted

    def put(self, arbitration_id: int, data: bytes, timestamp: float) -> None:
        """Store one frame by key (``frame_key``); O(1), never raises, never logs."""
        old = self._latest.get(arbitration_id)
        if old is None:
            self._first(arbitration_id, data, timestamp)
            return
        sel = old[6]
        if len(data) < old[5]:
            self._short += 1
        self._latest[arbitration_id] = (data, timestamp, old[0], old[1], old[4] + 1, old[5], sel)
        if sel is not None:
            self._put_mux(arbitration_id, sel, data, timestamp)

    def _first(self, key: int, data: bytes, timestamp: float) -> None:
        """The first frame of a key: store it if wanted, else count it."""
        if not (self._accept_all or key in self._wanted):
            unwanted = self._unwanted
            if key in unwanted or len(unwanted) < MAX_UNWANTED_IDS:
                unwanted[key] = unwanted.get(key, 0) + 1
            else:
                self._unwanted_other += 1
            return
        minimum = self._lengths.get(key, 0)
        if len(data) < minimum:
            self._short += 1
        sel = self._mux_selectors.get(key)
        self._latest[key] = (data, timestamp, None, None, 1, minimum, sel)
        if sel is not None:
            self._put_mux(key, sel, data, timestamp)

    def _put_mux(self, key: int, sel: MuxSelector, data: bytes, timestamp: float) -> None:
        try:
            value = sel(data)
        except IndexError:
            self._no_mux += 1
            return
        groups = self._muxed.get(key)
        if groups is None:
            groups = self._muxed[key] = {}
        old = groups.get(value)
        if old is None:
            groups[value] = (data, timestamp, None, None, 1)
        else:
            groups[value] = (data, timestamp, old[0], old[1], old[4] + 1)

    def put_error(self, timestamp: float) -> None:
        """Count one error frame."""
        self._errors += 1
        self.last_error_timestamp = timestamp

    def put_remote(self, arbitration_id: int) -> None:
        """Count one remote (RTR) frame; it carries no data and is not stored."""
        self._remote += 1

    def get(self, arbitration_id: int, mux: int | None = None) -> CachedFrame | None:
        """The latest frame of a key (of that mux value when ``mux`` is given), or ``None``.

        Without ``mux``, a multiplexed key returns its latest frame whatever its mux value (the one
        whose counter/checksum follows the previous frame of the same id).
        """
        if mux is None:
            entry = self._latest.get(arbitration_id)
            return None if entry is None else CachedFrame(entry[0], entry[1], entry[2], entry[3], entry[4])
        groups = self._muxed.get(arbitration_id)
        if groups is None:
            return None
        found = groups.get(mux)
        return None if found is None else CachedFrame(*found)

    def mux_values(self, arbitration_id: int) -> list[int]:
        """The mux values seen for a key, sorted."""
        return sorted(self._muxed.get(arbitration_id, ()))

    def keys(self) -> list[int]:
        """Every key stored so far."""
        return list(self._latest)

    @property
    def stats(self) -> CacheStats:
        """A consistent-enough snapshot of the counters (read while the writer runs)."""
        by_id = {key: entry[4] for key, entry in list(self._latest.items())}
        unwanted_by_id = dict(self._unwanted)
        unwanted = sum(unwanted_by_id.values()) + self._unwanted_other
        return CacheStats(
            frames=sum(by_id.values()) + unwanted,
            unwanted=unwanted,
            error_frames=self._errors,
            remote_frames=self._remote,
            short=self._short,
            no_mux=self._no_mux,
            by_id=by_id,
            unwanted_by_id=unwanted_by_id,
        )


__all__ = [
    "EXTENDED_FLAG",
    "ID_MASK",
    "MAX_UNWANTED_IDS",
    "CacheStats",
    "CachedFrame",
    "FrameCache",
    "MuxSelector",
    "frame_key",
    "message_key",
    "split_key",
]
