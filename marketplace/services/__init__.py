"""Writes: one function per state change (HackSoft-style services)."""
