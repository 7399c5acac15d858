"""tbox edge agent: GB/T 32960 on-board terminal."""
