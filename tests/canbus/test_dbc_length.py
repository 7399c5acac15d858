"""A frame shorter than its DBC length is counted malformed, even when the mapping needs fewer bytes."""

from __future__ import annotations

from pathlib import Path

from agent.canbus.mapping import load_mapping

MAPPING = Path(__file__).resolve().parents[2] / "dbc" / "tbox_ev.toml"


def test_short_frame_of_an_unchecked_message_is_counted() -> None:
    mapping = load_mapping(MAPPING)
    odometer = mapping.database.get_message_by_name("VCU_Odometer")
    group = next(g for g in mapping.groups if g.message == "VCU_Odometer")
    assert group.check is None and group.min_length < odometer.length == 8  # no checksum would catch it
    cache = mapping.new_cache()
    cache.put(odometer.frame_id, bytes(8), 0.0)
    cache.put(odometer.frame_id, bytes(group.min_length), 0.1)  # long enough to decode, yet wrong DLC
    assert cache.stats.short == 1
