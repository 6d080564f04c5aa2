"""Whose installation serves a Slack event or turn."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Tenant:
    """Whose installation serves an event: the workspace, its Grid org, and whether the app
    is installed org-wide (then the org's one installation serves every workspace in it)."""

    team_id: str | None
    enterprise_id: str | None
    org_install: bool = False

    def __str__(self) -> str:
        return (
            self.enterprise_id if self.org_install and self.enterprise_id else self.team_id or "-"
        )
