import pytest
from openai import OpenAI

from harness import start_gateway


@pytest.fixture(scope="session")
def gateway():
    gw = start_gateway()
    yield gw
    gw.stop()


@pytest.fixture
def backends(gateway):
    """The mock backends, with their request records cleared."""
    gateway.clear_backends()
    return gateway.backends


@pytest.fixture
def client(gateway):
    """The real OpenAI SDK pointed at the gateway; no retries, so each test
    sees exactly one attempt."""
    return OpenAI(base_url=gateway.base_url, api_key="sk-demo", max_retries=0)
