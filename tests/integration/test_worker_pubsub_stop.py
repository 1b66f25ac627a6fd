"""A worker asked to stop leaves RQ's pub/sub at once, whatever its thread was doing.

RQ polls its pub/sub thread every 60 s; once unsubscribed, the thread sleeps out that poll, and
redis-py 8's ``PubSubWorkerThread.stop()`` waits for it: a stopped ``medio worker`` hung for up
to a minute after its last job (``workers.scheduler.ResilientWorker.unsubscribe``).
"""

from __future__ import annotations

import threading
import time

import redis

from adapters.settings import Settings
from workers.scheduler import PUBSUB_STOP_SECONDS, ResilientWorker

GIVEN_SECONDS = PUBSUB_STOP_SECONDS + 4  # a loaded machine; RQ's poll alone is 60 s


def test_unsubscribe_does_not_wait_out_the_pubsub_poll(settings: Settings) -> None:
    connection = redis.Redis.from_url(settings.redis_url)
    worker = ResilientWorker(["test-pubsub-stop"], connection=connection)
    worker.subscribe()
    assert worker.pubsub is not None and worker.pubsub_thread is not None
    # The thread reads the unsubscribe reply itself and goes back to its poll: the moment
    # that hung (when the worker's stop came after it).
    worker.pubsub.unsubscribe()
    deadline = time.monotonic() + GIVEN_SECONDS
    while worker.pubsub.subscribed and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not worker.pubsub.subscribed
    time.sleep(0.2)  # into the wait for a subscription
    assert worker.pubsub_thread.is_alive()

    leaving = threading.Thread(target=worker.unsubscribe, daemon=True)
    started = time.monotonic()
    leaving.start()
    leaving.join(GIVEN_SECONDS)
    assert not leaving.is_alive(), "the worker waited out RQ's 60 s pub/sub poll"
    assert time.monotonic() - started < GIVEN_SECONDS
    connection.close()
