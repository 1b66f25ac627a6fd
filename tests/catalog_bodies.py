"""The seed's example request bodies of the catalog, shared by the rules tests and the API tests."""

from __future__ import annotations

from typing import Any


def seed_video_body() -> dict[str, Any]:
    """The seed's example ``POST /api/videos`` body (a fresh copy each call)."""
    return {
        "title": "New Educational Video",
        "description": "Learn about space",
        "url": "https://example.com/space.mp4",
        "thumbnail_url": "https://example.com/space-thumb.jpg",
        "duration": 900,
    }
