"""Every projection Medio maintains. Adding one is one module and one line here."""

from __future__ import annotations

from projections.archive import Archive
from projections.base import RedisProjection, SqlProjection
from projections.daily_limit import DailyLimitCounters
from projections.devices import DevicesProjection
from projections.ledger import LedgerProjection
from projections.read_versions import ReadVersions
from projections.resume import ResumeProjection
from projections.series_resume import SeriesResumeProjection
from projections.sessions import SessionsProjection
from projections.stats import StatsProjection

SQL_PROJECTIONS: list[type[SqlProjection]] = [
    Archive,
    SessionsProjection,
    StatsProjection,
    DevicesProjection,
    LedgerProjection,
]
REDIS_PROJECTIONS: list[type[RedisProjection]] = [
    ResumeProjection,
    SeriesResumeProjection,
    DailyLimitCounters,
    ReadVersions,
]
