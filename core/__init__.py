"""Samsar bots core."""
