import warnings

import pytest
import secrets_audit
from harness import ENVOY_LOG_LEVEL, client_keys, sdk, start_gateway


@pytest.fixture(scope="session", autouse=True)
def no_secrets_in_logs_or_backends():
    """The secrets audit (secrets_audit.py): after every other fixture has
    stopped its processes, no client key and no client Authorization value may
    appear in any Envoy log, access log, or request a backend received."""
    yield
    # At debug level Envoy itself prints every request header (Authorization
    # included): its logs are then not the filter's to answer for.
    envoy_logs = ENVOY_LOG_LEVEL not in ("debug", "trace")
    if not envoy_logs:
        warnings.warn(f"ENVOY_LOG_LEVEL={ENVOY_LOG_LEVEL}: the secrets audit did not read Envoy's logs")
    findings, read = secrets_audit.scan_session(client_keys(), envoy_logs=envoy_logs)
    if findings:
        shown = "\n".join(str(f) for f in findings[:20])
        pytest.fail(f"secrets leaked ({len(findings)} findings; files kept in {secrets_audit.session_dir()}):\n{shown}",
                    pytrace=False)
    secrets_audit.remove_session()


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
    return sdk(gateway)
