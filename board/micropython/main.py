"""tbox lite firmware entry point (copied to the board's root with the tbox_lite package, the
generated ``tbox_table.py`` and agent/protocol/wire.py; see docs/micropython.md).

Settings come from ``tbox.json`` on the board, e.g.::

    {"vin": "LTBOXLITE00000001", "host": "203.0.113.7", "port": 32960,
     "can": {"bus": 1, "bitrate": 500000},
     "uart": {"id": 2, "baudrate": 115200, "apn": "cmnet"},      # omit for a network socket
     "ring": {"slots": 256, "slot_size": 256}, "options": {"period_s": 10}}
"""

import gc
import json
import time

import tbox_table
from tbox_lite.can_io import MachineCan
from tbox_lite.link import SocketLink, UartModemLink
from tbox_lite.ring import Ring
from tbox_lite.terminal import Terminal


def _clock():
    # type: () -> float
    return time.time() + (946684800 if time.gmtime(0)[0] == 2000 else 0)  # Unix seconds on any port


def _open_can(cfg):
    # type: (dict) -> object
    try:
        from machine import CAN  # type: ignore[attr-defined]

        return CAN(cfg.get("bus", 1), bitrate=cfg.get("bitrate", 500000))
    except ImportError:
        from pyb import CAN as PybCan  # type: ignore[attr-defined]

        bus = PybCan(cfg.get("bus", 1), PybCan.NORMAL, baudrate=cfg.get("bitrate", 500000) // 1000)
        return bus


def main():
    # type: () -> None
    with open("tbox.json") as f:
        cfg = json.load(f)
    vin = cfg["vin"].encode()
    iccid = cfg.get("iccid", "").encode()
    if "uart" in cfg:
        from machine import UART

        u = cfg["uart"]
        link = UartModemLink(
            UART(u.get("id", 2), u.get("baudrate", 115200)),
            cfg["host"],
            cfg["port"],
            time.sleep_ms,  # type: ignore[attr-defined]
            time.ticks_ms,  # type: ignore[attr-defined]
            u.get("apn", ""),
        )  # type: object
        if not iccid and link.open():  # type: ignore[attr-defined]
            iccid = link.iccid()  # type: ignore[attr-defined]
            link.close()  # type: ignore[attr-defined]
    else:
        link = SocketLink(cfg["host"], cfg["port"])
    ids = list(tbox_table.ROUTES)
    can = MachineCan(_open_can(cfg.get("can", {})), _clock, ids)
    r = cfg.get("ring", {})
    ring = Ring("tbox_ring.bin", r.get("slots", 256), r.get("slot_size", 256))
    terminal = Terminal(tbox_table, can, link, ring, _clock, vin, iccid, cfg.get("options"))
    try:
        while True:
            terminal.poll()
            gc.collect()
            time.sleep_ms(20)  # type: ignore[attr-defined]
    finally:
        terminal.stop()
        ring.close()


main()
