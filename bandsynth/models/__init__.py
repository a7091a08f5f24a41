"""The registry of shipped models: model cards and their weights (no torch needed)."""
