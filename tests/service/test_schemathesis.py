"""Schemathesis over the service's ``/openapi.json`` (ASGI, in process): whatever a client sends, no 5xx.

Auth is off here (explicit config) so generated bodies reach validation instead of stopping at 401; examples are
bounded to keep the run short."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from tests.service.conftest import clock, settings_for

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


@pytest.fixture(scope="module")
def api_schema(trained_ibm, tmp_path_factory):
    from tradeops.deploy.service import create_app

    base, _ = trained_ibm
    settings = settings_for(
        base.home, tmp_path_factory.mktemp("schemathesis"), base.model.model_dump(), auth=False, max_batch=20
    )
    app = create_app(settings, clock=clock)
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    app.state.predlog.close()


def test_no_server_error(api_schema):
    """Every operation of the schema, bounded examples each (one hypothesis run per operation)."""
    seen = []
    for result in api_schema.get_all_operations():
        operation = result.ok()
        seen.append(f"{operation.method.upper()} {operation.path}")

        @given(case=operation.as_strategy())
        @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case) -> None:
            response = case.call()
            assert response.status_code < 500, (case.method, case.path, case.body, response.text)

        check()
    assert "POST /v1/signals" in seen and "POST /v1/signals:batch" in seen and "POST /v1/admin/halt" in seen
