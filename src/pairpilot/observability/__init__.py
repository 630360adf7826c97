"""Logging, metrics and error reporting set-up."""
