"""Reading the user's JSON files with one-line errors that name the file and the problem."""

from __future__ import annotations

import json
from pathlib import Path

from .errors import UserError


def read_json_object(path, error=UserError) -> dict:
    """A user-supplied JSON file that must hold an object; ``error`` (one line) otherwise."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise error(f"{p}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise error(f"{p}: expected a JSON object")
    return data
