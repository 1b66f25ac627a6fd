"""Numbers in query strings are ASCII digits (issue 15, L10).

``str.isdigit`` accepts ``²`` and ``①``, which ``int`` then refuses: a 500 on every paged
route. Each such value is a 400 in the route family's documented shape.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

Client = AsyncTestClient[Litestar]
Auth = Callable[..., dict[str, str]]
UNICODE_DIGITS = ["²", "①", "\u0661\u0662", "\U0001d7d9"]  # and Arabic-Indic 12, double-struck 1


@pytest.mark.parametrize("digits", UNICODE_DIGITS)
@pytest.mark.parametrize(
    "query", ["/api/videos?page={}", "/api/videos?limit={}", "/api/profiles?page={}"]
)
async def test_unicode_digits_in_paging_are_400(
    client: Client, auth: Auth, query: str, digits: str
) -> None:
    response = await client.get(query.format(digits), headers=auth())
    assert response.status_code == 400
    assert [e["location"] for e in response.json()["errors"]] == ["query"]


@pytest.mark.parametrize("digits", UNICODE_DIGITS)
@pytest.mark.parametrize("name", ["after", "limit"])
async def test_unicode_digits_in_the_event_feed_are_400(
    client: Client, auth: Auth, name: str, digits: str
) -> None:
    response = await client.get(f"/api/events?{name}={digits}", headers=auth(role="analyst"))
    assert response.status_code == 400
    assert [e["path"] for e in response.json()["errors"]] == [name]


@pytest.mark.parametrize("digits", UNICODE_DIGITS)
async def test_unicode_digits_in_the_progress_limit_are_400(
    client: Client, auth: Auth, digits: str
) -> None:
    response = await client.get(f"/api/progress/kid_1?limit={digits}", headers=auth("kid_1"))
    assert response.status_code == 400
    assert list(response.json()["details"]) == ["limit"]
