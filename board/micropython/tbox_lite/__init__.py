"""tbox lite: a GB/T 32960 terminal for MicroPython boards with a CAN controller (docs/micropython.md)."""

VERSION = "0.1.0"
