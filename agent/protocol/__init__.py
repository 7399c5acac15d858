"""GB/T 32960 protocol core (editions 2016 and 2025): pure, no I/O, no clocks, no globals.

Kept import-free so that ``wire`` runs under MicroPython on its own.
"""
