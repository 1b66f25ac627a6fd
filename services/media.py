"""Media files of videos (uploads, thumbnails, streams) for the API: the store that names,
publishes and removes them, and constant-memory reads of a byte span.

The files themselves are an adapter (``adapters.media``, ``adapters.file_span``); this is the
one door the API goes through to them.
"""

from __future__ import annotations

from adapters.container import Container
from adapters.file_span import file_span
from adapters.media import MediaStore

__all__ = ["MediaStore", "file_span", "media_of"]


def media_of(container: Container) -> MediaStore:
    """The media store of ``container``'s settings."""
    return MediaStore(container.settings.media_path)
