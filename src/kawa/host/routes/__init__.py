"""Thin HTTP routes: parse, call a service, return a protocol model."""
