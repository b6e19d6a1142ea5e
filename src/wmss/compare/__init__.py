"""`wmss compare`: WMSS against baselines and controls from the same M1, over seeds and sweeps, with paired
statistics; and `wmss regime`, the premises of the paper's claim measured on a weak/strong pair."""
