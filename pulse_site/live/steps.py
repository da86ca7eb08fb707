"""Ticker steps of the live app (relay and retention), registered at import."""
