"""Experiment specs: pydantic models (one per YAML section) and the YAML + --set loader."""
