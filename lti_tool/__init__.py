"""Tsunagu: an LTI 1.3 tool for the Foreign Resident Support Coordinator training programme."""

__version__ = "0.1.0"
