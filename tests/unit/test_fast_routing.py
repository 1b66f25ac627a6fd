"""The routing workaround the fast routes need (``api.fast.route_path_parameters``).

Litestar 2.25 cannot route a request to an ASGI handler whose path has a parameter (it answers
500). The first test shows that on a bare app, so that a Litestar release that fixes it (or
changes the trie the workaround patches) is noticed; the second, that with the workaround the
parameter arrives typed and any method reaches the handler.
"""

from __future__ import annotations

from litestar import Litestar, asgi
from litestar.testing import TestClient
from litestar.types import Receive, Scope, Send

from api.fast import route_path_parameters


@asgi("/things/{thing_id:int}", copy_scope=False)
async def thing(scope: Scope, receive: Receive, send: Send) -> None:
    body = f"{scope['method']} {scope['path_params']['thing_id'] + 1}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def test_litestar_alone_cannot_route_an_asgi_path_parameter() -> None:
    with TestClient(Litestar([thing])) as client:
        assert client.get("/things/41").status_code == 500


def test_with_the_workaround_the_parameter_arrives_typed_under_any_method() -> None:
    app = Litestar([thing])
    route_path_parameters(app)
    with TestClient(app) as client:
        assert client.get("/things/41").text == "GET 42"
        assert client.request("PROPFIND", "/things/1").text == "PROPFIND 2"
        assert client.get("/things/x").status_code == 404  # the router still parses it
