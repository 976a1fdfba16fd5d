"""Checks of settings shared by every config section: a count below its minimum is refused with
the ``section.key=value`` the user wrote."""

from __future__ import annotations

from typing import Any

__all__ = ["require_at_least"]


def require_at_least(section: str, config: Any, minimums: dict[str, int]) -> None:
    """Refuse counts below their minimum, naming each as ``section.key=value``."""
    bad = [f"{section}{'.' if section else ''}{key}={getattr(config, key)} (must be >= {low})"
           for key, low in minimums.items() if getattr(config, key) < low]
    if bad:
        raise ValueError(f"out of range: {', '.join(bad)}")
