"""`wmss compare`: WMSS against baselines and controls from the same M1, over seeds and sweeps, with paired statistics."""
