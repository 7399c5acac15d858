"""Vehicle physics: drive cycles, powertrain, battery cells, thermal, charging, GNSS track."""
