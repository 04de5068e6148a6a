"""Streams are bounded by an idle timeout, not by an overall deadline; other
responses keep their deadline. A gateway whose routes have the shipped
shape with timeouts shortened to seconds: a stream that keeps sending for
longer than the deadline completes; a stream that goes silent past the idle
timeout is cut, as the README describes."""

import time

import httpx
import openai
import pytest
from harness import HI, connection_manager, demo_bootstrap, sdk, start_gateway

DEADLINE_S = 2.0  # non-streamed responses
IDLE_S = 1.5      # streamed responses: no byte for this long ends them


def routes(bootstrap: dict) -> list[dict]:
    return connection_manager(bootstrap)["route_config"]["virtual_hosts"][0]["routes"]


@pytest.fixture(scope="module")
def short_timeouts():
    bootstrap = demo_bootstrap()
    for route in routes(bootstrap):
        action = route["route"]
        if "idle_timeout" in action:
            action["idle_timeout"] = f"{IDLE_S}s"
        else:
            action["timeout"] = f"{DEADLINE_S}s"
    gw = start_gateway(bootstrap)
    yield gw
    gw.stop()


def test_the_shipped_routes_bound_streams_by_idleness_and_the_rest_by_a_deadline():
    shipped = routes(demo_bootstrap())
    stream_routes = [r for r in shipped if any(h["name"] == "x-gateway-stream" for h in r["match"]["headers"])]
    other_routes = [r for r in shipped if r not in stream_routes]
    assert len(stream_routes) == len(other_routes) == 2
    for route in stream_routes:
        assert route["route"]["timeout"] == "0s" and route["route"]["idle_timeout"] == "120s"
    for route in other_routes:
        assert route["route"]["timeout"] == "300s" and "idle_timeout" not in route["route"]
    # Each stream route comes first and names the same cluster as its twin.
    for stream, other in zip(stream_routes, other_routes):
        assert shipped.index(stream) < shipped.index(other)
        assert stream["route"]["cluster"] == other["route"]["cluster"]


def test_a_stream_that_keeps_sending_outlives_the_deadline(short_timeouts):
    client = sdk(short_timeouts, default_headers={"x-mock-stream-delay-ms": "700"})
    started = time.monotonic()
    chunks = list(client.chat.completions.create(model="llama-3.1-8b-instruct", messages=HI, stream=True))
    elapsed = time.monotonic() - started
    assert elapsed > DEADLINE_S + 0.5, elapsed  # it did outlast the deadline
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from backend-a."
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_a_stream_that_goes_silent_is_cut_after_the_idle_timeout(short_timeouts):
    client = sdk(short_timeouts, default_headers={"x-mock-stream-delay-ms": "4000"})
    started = time.monotonic()
    received = []
    # The cut comes after the response began: the SDK sees the connection
    # end without the stream's end (httpx's RemoteProtocolError).
    with pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"):
        for chunk in client.chat.completions.create(model="llama-3.1-8b-instruct", messages=HI, stream=True):
            received.append(chunk)
    elapsed = time.monotonic() - started
    assert len(received) == 1, received  # the first event only
    assert IDLE_S - 0.2 < elapsed < 3.5, elapsed


def test_a_response_that_is_not_streamed_keeps_its_deadline(short_timeouts):
    # The backend takes longer than the deadline to answer. A client that
    # sends the gateway's stream header itself does not buy the streams'
    # route: the gateway's own headers are taken off client requests.
    client = sdk(short_timeouts, default_headers={"x-mock-delay-ms": "3500", "x-gateway-stream": "true"})
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as error:
        client.chat.completions.create(model="llama-3.1-8b-instruct", messages=HI)
    elapsed = time.monotonic() - started
    assert error.value.status_code == 504
    assert "did not answer in time" in error.value.message
    assert DEADLINE_S - 0.2 < elapsed < 3.4, elapsed
