"""Reference data the product ships (copied from the research snapshot; provenance in README.md here)."""

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent
