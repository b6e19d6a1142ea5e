"""Baseline post-training methods that WMSS is compared with (beyond plain SFT)."""
