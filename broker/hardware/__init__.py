"""The hardware vocabulary: accelerator specs and alias resolution (pure Python, no Django)."""
