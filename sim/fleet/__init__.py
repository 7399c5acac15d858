"""Virtual fleets: light vehicles (``lite``) running the real terminal session against a platform."""
