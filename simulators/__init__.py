"""Virtual hardware that plugs in at the same seams as the real drivers."""
