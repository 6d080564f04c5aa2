"""Durable turns: a member action lives in the ledger until its answer is delivered."""
