"""Paths from data (table cells, metadata rows, archive members) confined to the folder they name a file in."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from claimed_airflow.core.errors import ClaimedError

# A model's name: the folder of its versions under a models root and the host of its claimed-model:// asset URI.
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def inside(root: str | Path, *parts: str) -> Path:
    """``root/part/...`` resolved, symbolic links followed; a :class:`ClaimedError` naming the value when a part
    is absolute, has ``..`` or a NUL byte, or the path resolves outside ``root``. Values from files are hostile:
    every path built from one goes through here."""
    for part in parts:
        text = str(part)
        if "\x00" in text or Path(text).is_absolute() or ".." in PurePosixPath(text.replace("\\", "/")).parts:
            raise ClaimedError(f"{text!r} leads out of its folder (absolute path or '..')")
    real_root = Path(root).resolve()
    path = real_root.joinpath(*map(str, parts)).resolve()
    if not path.is_relative_to(real_root):
        raise ClaimedError(f"{'/'.join(map(str, parts))!r} resolves outside its folder (symbolic link)")
    return path
