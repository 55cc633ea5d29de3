"""Workflows: deterministic code only (entry, bulk redrive, maintenance)."""
