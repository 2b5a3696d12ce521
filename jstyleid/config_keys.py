"""Config keys renamed in issue 16: an old key is refused in one line naming its new spelling, at
workflow start and before the schema (whose message would not say what the key became)."""

from __future__ import annotations

from .errors import InputError

# old key -> what to write instead
RENAMED_KEYS = {"evaluate": "evaluation: {enabled: true|false}"}


def refuse_old_keys(config: dict, where: str = "config") -> None:
    """Raise InputError for the first old key of `config` or of a per-style override in `styles`."""
    places = [(where, config)] + [(f"{where} styles: {style}", overrides)
                                  for style, overrides in (config.get("styles") or {}).items()
                                  if isinstance(overrides, dict)]
    for place, settings in places:
        for old, new in RENAMED_KEYS.items():
            if old in settings:
                raise InputError(place, f"key `{old}` is gone; write `{new}`")
        if "select" in settings and settings["select"] is None:
            raise InputError(place, "`select: null` is spelled `select: none` now (as on the CLI)")
