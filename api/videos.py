"""``/api/videos``: a parent's video catalog (seed 004, CONTRACT §5).

Videos belong to whoever created them; another parent's video id answers 404 on every route.
Uploads and streaming live in ``api.uploads`` and ``api.streaming``.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery

from api.bodies import checked_body
from api.catalog_schema import (
    VideoList,
    VideoOut,
    answer_video,
    not_found,
    page_query,
    video_out,
)
from api.deps import ContainerDep, PrincipalDep, services_of
from api.idempotency import Idempotent, receipt_of
from api.openapi_parts import PAGING
from api.route_facts import facts
from domain.catalog import VideoCreate, VideoUpdate, check_video, page_metadata, video_values
from services import catalog
from services.idempotency import SQL_ANSWERS
from services.media import media_of

DEFAULT_LIMIT = 20


class VideosController(Controller):
    """Create, list, read, change and remove the caller's videos."""

    path = "/api/videos"
    tags = ["videos"]

    @get(summary="The caller's videos, newest first", opt=facts(query=PAGING))
    async def list_videos(
        self,
        container: ContainerDep,
        principal: PrincipalDep,
        page: FromQuery[str | None] = None,
        limit: FromQuery[str | None] = None,
    ) -> VideoList:
        wanted = page_query(page, limit, DEFAULT_LIMIT)
        found, total = await catalog.list_videos(container, principal.user_id, wanted)
        return VideoList(
            videos=[video_out(v) for v in found], metadata=page_metadata(wanted, total)
        )

    @post(
        summary="Add a video by URL",
        opt=facts(json_body=VideoCreate),
        dependencies={"video": checked_body(VideoCreate, lambda b: check_video(b, "create"))},
        middleware=[Idempotent(SQL_ANSWERS)],
    )
    async def create_video(
        self,
        request: Request[Any, Any, Any],
        container: ContainerDep,
        principal: PrincipalDep,
        video: NamedDependency[VideoCreate],
    ) -> VideoOut:
        values = video_values(video)
        now = container.clock.now()
        receipt = receipt_of(request.scope, answer_video)
        created = await services_of(request.app.state).users.write_as(
            principal.sub,
            principal.user_id,
            lambda user_id: catalog.create_video(container, user_id, values, now, receipt),
        )
        return video_out(created)

    @get("/{video_id:int}", summary="One of the caller's videos")
    async def get_video(
        self, container: ContainerDep, principal: PrincipalDep, video_id: FromPath[int]
    ) -> VideoOut:
        found = await catalog.get_video(container, principal.user_id, video_id)
        if found is None:
            raise not_found("Video")
        return video_out(found)

    @patch(
        "/{video_id:int}",
        summary="Change some fields of a video",
        opt=facts(json_body=VideoUpdate),
        dependencies={"change": checked_body(VideoUpdate, lambda b: check_video(b, "update"))},
    )
    async def update_video(
        self,
        container: ContainerDep,
        principal: PrincipalDep,
        video_id: FromPath[int],
        change: NamedDependency[VideoUpdate],
    ) -> VideoOut:
        changed = await catalog.update_video(
            container, principal.user_id, video_id, video_values(change), container.clock.now()
        )
        if changed is None:
            raise not_found("Video")
        return video_out(changed)

    @delete("/{video_id:int}", summary="Remove a video (and its uploaded files)")
    async def delete_video(
        self, container: ContainerDep, principal: PrincipalDep, video_id: FromPath[int]
    ) -> Response[None]:
        removed = await catalog.delete_video(container, principal.user_id, video_id)
        if removed is None:
            raise not_found("Video")
        media_of(container).remove(removed.file_path, removed.thumbnail_path)
        return Response(content=None, status_code=204)
