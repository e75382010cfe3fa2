"""Lanyard admin console."""
