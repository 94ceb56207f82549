"""Logspace HQ: authenticate, validate and store typed events in Elasticsearch."""

__version__ = "0.1.0.dev0"
