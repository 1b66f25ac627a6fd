"""Uploaded files on disk under ``MEDIO_MEDIA_ROOT``: where they go and how they come back.

Names are made here (``videos/video-<epoch>-<random>.<ext>``), never taken from a client, and a
stored ``/uploads/...`` path is only turned back into a file path when it matches that pattern,
so nothing outside the media root can be read or deleted through the catalog. Files are written
under a hidden temporary name and renamed into place only once the whole upload is accepted.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from pathlib import Path

from domain.media import MediaKind, MediaType

PUBLIC_PREFIX = "/uploads/"
FOLDERS: dict[MediaKind, tuple[str, str]] = {
    "video": ("videos", "video"),
    "thumbnail": ("thumbnails", "thumb"),
}
STORED_NAME = re.compile(
    r"^/uploads/(?P<folder>videos|thumbnails)/(?P<name>(?:video|thumb)-\d{1,12}-[a-f0-9]{12}\.[a-z0-9]{2,5})$"
)


class MediaStore:
    """Files of one media root."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def incoming(self, kind: MediaKind) -> Path:
        """A fresh temporary path in the kind's folder (same filesystem, so rename is atomic)."""
        folder = self.root / FOLDERS[kind][0]
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f".incoming-{secrets.token_hex(8)}.part"

    def publish(self, kind: MediaKind, temporary: Path, media_type: MediaType) -> str:
        """Move an accepted upload to its final name; returns its ``/uploads/...`` path."""
        folder, prefix = FOLDERS[kind]
        name = f"{prefix}-{int(time.time())}-{secrets.token_hex(6)}.{media_type.extension}"
        os.replace(temporary, self.root / folder / name)
        return f"{PUBLIC_PREFIX}{folder}/{name}"

    def locate(self, public_path: str | None) -> Path | None:
        """The file behind a stored ``/uploads/...`` path, or ``None`` if it is not one of ours."""
        match = STORED_NAME.match(public_path or "")
        if match is None:
            return None
        return self.root / match["folder"] / match["name"]

    def remove(self, *public_paths: str | None) -> None:
        """Delete stored files; already-missing ones are fine."""
        for public_path in public_paths:
            path = self.locate(public_path)
            if path is not None:
                path.unlink(missing_ok=True)
