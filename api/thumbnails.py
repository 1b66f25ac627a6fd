"""``GET /api/videos/:id/thumbnail``: the thumbnail image stored by an upload.

Owner-scoped like every video route: another parent's video, a video without an uploaded
thumbnail, or a file gone from disk are all 404. Only the ``Authorization`` header is accepted:
CONTRACT §3 allows ``?access_token=`` on the stream route alone, so an ``<img src>`` cannot load
this directly; a web app fetches it with its token and shows the blob (docs/api.md says how).
Thumbnails are at most a few megabytes, so Litestar's ``File`` response serves them; its
``ETag`` is the stored name, which a new upload never reuses, so a revalidation is a 304.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get
from litestar.datastructures import ETag
from litestar.params import FromPath
from litestar.response import File

from api.catalog_schema import not_found
from api.deps import ContainerDep, PrincipalDep
from api.openapi_parts import thumbnail_responses
from api.route_facts import facts
from domain.media import stored_image_type
from services import catalog
from services.media import media_of

# Private: the image is one family's; a day, since the URL names the video, not the file.
CACHE_CONTROL = "private, max-age=86400"


class ThumbnailController(Controller):
    """Parents' apps fetch uploaded thumbnails here."""

    path = "/api/videos"
    tags = ["videos"]

    @get(
        "/{video_id:int}/thumbnail",
        summary="An uploaded video's thumbnail image",
        opt=facts(document=thumbnail_responses),
    )
    async def get_thumbnail(
        self,
        request: Request[Any, Any, Any],
        container: ContainerDep,
        principal: PrincipalDep,
        video_id: FromPath[int],
    ) -> Response[Any]:
        video = await catalog.get_video(container, principal.user_id, video_id)
        if video is None:
            raise not_found("Video")
        path = media_of(container).locate(video.thumbnail_path)
        image_type = stored_image_type(path.suffix.lstrip(".")) if path else None
        if path is None or image_type is None:
            raise not_found("Thumbnail")
        try:
            stat = path.stat()
        except FileNotFoundError:
            raise not_found("Thumbnail") from None
        etag = ETag(value=path.stem)
        headers = {
            "Cache-Control": CACHE_CONTROL,
            "X-Content-Type-Options": "nosniff",
            "ETag": etag.to_header(),
        }
        if _matches(request.headers.get("if-none-match"), etag.to_header()):
            return Response(content=None, status_code=304, headers=headers)
        return File(
            path,
            stat_result=stat,
            media_type=image_type.mime_type,
            content_disposition_type="inline",
            filename=f"thumbnail-{video_id}.{image_type.extension}",
            etag=etag,
            headers=headers,
        )


def _matches(if_none_match: str | None, etag: str) -> bool:
    """Whether the client's ``If-None-Match`` names ``etag`` (weakly, RFC 9110 §13.1.2)."""
    if not if_none_match:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags
