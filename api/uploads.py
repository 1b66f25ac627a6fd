"""``POST /api/videos/upload``: a video file (and optional thumbnail) streamed to disk.

The body is read chunk by chunk (see ``api.multipart_stream``) and each file goes straight to a
temporary file beside its final place. Limits are enforced on the bytes actually received, so
an oversized file is refused with the seed's 413 as soon as it crosses the limit, without
reading the rest. The type comes from the file's first bytes (415 otherwise). Files are renamed
into place and the row inserted only when everything is valid; on any failure, including a
client that goes away, the temporary files are deleted and no row is written.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
from anyio import AsyncFile
from litestar import Controller, Request, post
from litestar.exceptions import InternalServerException

from api.auth import Principal
from api.catalog_schema import VideoOut, answer_video, invalid, video_out
from api.deps import ContainerDep, PrincipalDep, services_of
from api.errors import ApiError, FieldError, InvalidFields, SpecialError
from api.idempotency import Idempotent, receipt_of
from api.limits import timed_out
from api.multipart_stream import PartData, PartStarted, boundary_of, form_events
from api.openapi_parts import upload_body
from api.route_facts import facts
from domain.catalog import MSG_DURATION, Problem, Video, check_video_details, is_ascii_digits
from domain.media import SNIFF_BYTES, MediaKind, MediaType, file_too_large, sniff
from services import catalog
from services.container import Container
from services.idempotency import SQL_ANSWERS, Receipt
from services.media import MediaStore
from services.users import UserDirectory

FORM_OVERHEAD = 1024 * 1024  # text fields, part headers and boundaries around the files
MAX_TEXT_FIELD = 64 * 1024
WRITE_BUFFER = 1024 * 1024
TEXT_FIELDS = ("title", "description", "duration")
MSG_VIDEO_REQUIRED = "Video file is required"


class _FileSink:
    """One file part: identified by its first bytes, counted, buffered, written to disk."""

    def __init__(self, kind: MediaKind, path: Path, limit: int) -> None:
        self.kind = kind
        self.path = path
        self.limit = limit
        self.size = 0
        self.media_type: MediaType | None = None
        self._pending = bytearray()
        self._file: AsyncFile[bytes] | None = None

    async def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise SpecialError(413, file_too_large(self.kind, self.limit))
        self._pending.extend(data)
        if self.media_type is None and len(self._pending) >= SNIFF_BYTES:
            self._identify()
        if self.media_type is not None and len(self._pending) >= WRITE_BUFFER:
            await self._flush()

    async def finish(self) -> MediaType | None:
        """The file's type once it is complete; ``None`` for an empty part (no file chosen)."""
        if self.size == 0:
            return None
        if self.media_type is None:
            self._identify()
        await self._flush()
        await self.close()
        return self.media_type

    async def close(self) -> None:
        if self._file is not None:
            await self._file.aclose()
            self._file = None

    def _identify(self) -> None:
        self.media_type = sniff(self.kind, bytes(self._pending[:SNIFF_BYTES]))
        if self.media_type is None:
            allowed = "MP4, MOV or WebM" if self.kind == "video" else "JPEG, PNG or WebP"
            raise ApiError(415, f"Unsupported {self.kind} file type: expected {allowed}")

    async def _flush(self) -> None:
        if self._file is None:
            self._file = await anyio.open_file(self.path, "wb")
        if self._pending:
            await self._file.write(bytes(self._pending))
            self._pending.clear()


class UploadForm:
    """Receives one upload form: files into temporary files, text fields into memory."""

    def __init__(self, media: MediaStore, limits: dict[MediaKind, int], body_limit: int) -> None:
        self.media = media
        self.limits = limits
        self.body_limit = body_limit
        self.files: dict[MediaKind, tuple[Path, MediaType, int]] = {}
        self.fields: dict[str, str] = {}
        self._sinks: list[_FileSink] = []

    async def receive(self, chunks: AsyncIterator[bytes], boundary: bytes) -> None:
        sink: _FileSink | None = None
        text: bytearray | None = None
        name = ""
        async for event in form_events(self._counted(chunks), boundary):
            if isinstance(event, PartStarted):
                name, sink, text = event.name, self._open_file(event), None
                if sink is None and event.filename is None:
                    text = bytearray()
                elif sink is None:
                    raise ApiError(400, f"Unexpected file field {name!r}")
            elif isinstance(event, PartData):
                if sink is not None:
                    await sink.write(event.data)
                elif text is not None:
                    text.extend(event.data)
                    if len(text) > MAX_TEXT_FIELD:
                        raise ApiError(413, f"Form field {name!r} is too large")
            elif sink is not None:
                # Browsers send an empty file part for a file input left blank.
                if (media_type := await sink.finish()) is not None:
                    self.files[sink.kind] = (sink.path, media_type, sink.size)
                sink = None
            elif text is not None and name in TEXT_FIELDS:
                self.fields[name] = text.decode("utf-8", "replace")

    def _open_file(self, part: PartStarted) -> _FileSink | None:
        if part.name not in self.limits:
            return None
        kind: MediaKind = "video" if part.name == "video" else "thumbnail"
        if any(sink.kind == kind for sink in self._sinks):
            raise ApiError(400, f"Only one {kind} file is allowed")
        sink = _FileSink(kind, self.media.incoming(kind), self.limits[kind])
        self._sinks.append(sink)
        return sink

    async def _counted(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        received = 0
        async for chunk in chunks:
            received += len(chunk)
            if received > self.body_limit:
                raise SpecialError(413, file_too_large("video", self.limits["video"]))
            yield chunk

    async def discard(self) -> None:
        """Delete every temporary file this form wrote (published ones were already moved)."""
        for sink in self._sinks:
            await sink.close()
            sink.path.unlink(missing_ok=True)


def _details(fields: dict[str, str]) -> dict[str, Any]:
    """The text fields as a video body; problems are raised in the seed's shape."""
    body: dict[str, Any] = {"title": fields.get("title")}
    if fields.get("description"):
        body["description"] = fields["description"]
    problems: list[Problem] = []
    duration = fields.get("duration", "").strip()
    if duration:
        if duration.isascii() and duration.isdigit() and len(duration) <= 10:
            body["duration"] = int(duration)
        else:
            problems.append(Problem("duration", MSG_DURATION))
    problems = check_video_details(body, "create") + problems
    if problems:
        raise invalid(problems)
    body["title"] = body["title"].strip()
    return body


async def save_upload(
    container: Container,
    owner: Principal,
    users: UserDirectory,
    form: UploadForm,
    receipt: Receipt[Video] | None = None,
) -> Video:
    """Publish the received files and insert their video row; nothing is left if it fails
    (nor if a twin request with the same ``Idempotency-Key`` inserted its row first)."""
    if "video" not in form.files:
        raise InvalidFields([FieldError("video", MSG_VIDEO_REQUIRED)])
    details = _details(form.fields)
    video_file, video_type, video_size = form.files["video"]
    published: list[str] = []
    try:
        file_path = form.media.publish("video", video_file, video_type)
        published.append(file_path)
        thumbnail_path = None
        if "thumbnail" in form.files:
            thumbnail_file, thumbnail_type, _size = form.files["thumbnail"]
            thumbnail_path = form.media.publish("thumbnail", thumbnail_file, thumbnail_type)
            published.append(thumbnail_path)
        values = {
            **details,
            "url": None,
            "thumbnail_url": None,
            "file_path": file_path,
            "thumbnail_path": thumbnail_path,
            "size": video_size,
            "mime_type": video_type.mime_type,
        }
        now = container.clock.now()
        return await users.write_as(
            owner.sub,
            owner.user_id,
            lambda user_id: catalog.create_video(container, user_id, values, now, receipt),
        )
    except BaseException:
        form.media.remove(*published)
        raise


class UploadController(Controller):
    """Uploads of video files by parents."""

    path = "/api/videos"
    tags = ["videos"]

    # No framework body limit here: the app-wide one is sized for JSON, and this handler
    # enforces its own (the two file limits plus form overhead) on the bytes it reads.
    @post(
        "/upload",
        request_max_body_size=None,
        summary="Upload a video file (multipart)",
        opt=facts(file_upload=True, document=upload_body),
        middleware=[Idempotent(SQL_ANSWERS)],
    )
    async def upload_video(
        self, request: Request[Any, Any, Any], container: ContainerDep, principal: PrincipalDep
    ) -> VideoOut:
        settings = container.settings
        boundary = boundary_of(request.headers.get("content-type"))
        limits: dict[MediaKind, int] = {
            "video": settings.max_video_bytes,
            "thumbnail": settings.max_thumbnail_bytes,
        }
        body_limit = settings.max_video_bytes + settings.max_thumbnail_bytes + FORM_OVERHEAD
        declared = request.headers.get("content-length", "")
        if is_ascii_digits(declared) and int(declared) > body_limit:
            raise SpecialError(413, file_too_large("video", settings.max_video_bytes))
        form = UploadForm(MediaStore(settings.media_path), limits, body_limit)
        try:
            # An overall deadline: a body trickled a byte at a time never trips the idle
            # timeout (api.limits), and would otherwise hold its connection for hours.
            try:
                async with asyncio.timeout(settings.upload_timeout_seconds):
                    await form.receive(request.stream(), boundary)
            except TimeoutError:
                raise timed_out() from None
            receipt = receipt_of(request.scope, answer_video)  # the body is all read by now
            users = services_of(request.app.state).users
            video = await save_upload(container, principal, users, form, receipt)
        except InternalServerException:  # the client went away mid-body
            raise ApiError(400, "Upload was interrupted") from None
        finally:
            await form.discard()
        return video_out(video)
