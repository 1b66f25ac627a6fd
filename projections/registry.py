"""Every projection Medio maintains. Adding one is one module and one line here."""

from __future__ import annotations

from projections.archive import Archive
from projections.base import RedisProjection, SqlProjection
from projections.resume import ResumeProjection

SQL_PROJECTIONS: list[type[SqlProjection]] = [Archive]
REDIS_PROJECTIONS: list[type[RedisProjection]] = [ResumeProjection]
