"""tbox simulator: a realistic electric vehicle on a CAN bus, fleets, and a reference platform."""
