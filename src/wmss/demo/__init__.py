"""Offline demo of WMSS: a tiny tokenizer, task and base model, size presets and the result report."""
