"""``GET /api/videos/:id/stream``: an uploaded video, whole or by byte range, in chunks.

Litestar's ``File`` response is not used because it has no ``Range`` support; a ``Stream`` over
``services.media.file_span`` sends exactly the requested span with constant memory, reading
cached pages in the event loop and only the rest in a thread. A video that only has an external
``url`` is a redirect to it. Because a ``<video>`` element cannot set headers, this route (and
only this one) also takes the token as ``?access_token=`` (RFC 6750).
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Stream

from api.auth import bearer_token
from api.catalog_schema import not_found
from api.deps import ContainerDep, authenticate
from api.errors import ApiError
from api.openapi_parts import stream_responses
from api.route_facts import facts
from domain.media import ByteRange, Unsatisfiable, parse_range
from services import catalog
from services.media import file_span, media_of


class StreamController(Controller):
    """Players fetch uploaded videos here."""

    path = "/api/videos"
    tags = ["videos"]

    @get(
        "/{video_id:int}/stream",
        summary="Stream a video (Range supported)",
        opt=facts(access_token=True, ranges=True, document=stream_responses),
    )
    async def stream_video(
        self,
        request: Request[Any, Any, Any],
        container: ContainerDep,
        video_id: FromPath[int],
        access_token: FromQuery[str | None] = None,
    ) -> Response[Any]:
        token = bearer_token(request.headers.get("authorization")) or access_token or None
        principal = await authenticate(request, token)
        video = await catalog.get_video(container, principal.user_id, video_id)
        if video is None:
            raise not_found("Video")
        path = media_of(container).locate(video.file_path)
        if path is None:
            if video.url:
                return Redirect(video.url, status_code=302)
            raise not_found("Video file")
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise not_found("Video file") from None
        span = parse_range(request.headers.get("range"), size)
        if isinstance(span, Unsatisfiable):
            raise ApiError(416, "Range not satisfiable", {"Content-Range": span.content_range})
        if span is None:
            span, status = ByteRange(0, size - 1, size), 200
        else:
            status = 206
        mime_type = video.mime_type or "application/octet-stream"
        headers = {"Accept-Ranges": "bytes", "Content-Length": str(span.length)}
        if status == 206:
            headers["Content-Range"] = span.content_range
        return Stream(
            file_span(path, span.start, span.length),
            status_code=status,
            headers=headers,
            media_type=mime_type,
        )
