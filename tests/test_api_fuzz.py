"""Fuzz the whole API from its own OpenAPI schema with schemathesis, over real HTTP.

Every operation gets generated requests (valid and invalid); no answer may be a 5xx, and every
answer must conform to the schema: documented status code, content type, headers and body.
Bounded (a few examples per operation) so it stays well under a minute.
"""

import pytest
import schemathesis
from api_support import new_user, start_server
from hypothesis import HealthCheck, Phase, settings
from schemathesis.specs.openapi import checks as openapi_checks

from tracker.api.app import create_app

EXAMPLES_PER_OPERATION = 10


@pytest.fixture(scope="module")
def fuzz_db(server_url, seeded_template):
    from conftest import WORKER, _create_database, _drop_database

    name = f"tracker_fuzz_{WORKER}"
    url = _create_database(server_url, name, seeded_template)
    yield url
    _drop_database(server_url, name)


@pytest.fixture(scope="module")
def fuzz_server(fuzz_db, tmp_path_factory):
    server = start_server(fuzz_db, tmp_path_factory.mktemp("fuzz"))
    yield server
    assert server.stop() == 0, server.log()


@pytest.fixture(scope="module")
def fuzz_token(fuzz_db, fuzz_server):
    user = new_user(fuzz_db)
    with fuzz_server.client(user.token) as client:
        client.put("/api/v1/budgets", json={"category": "Food", "month": "2025-05", "amount": "5"})
        client.post(
            "/api/v1/expenses", json={"category": "Food", "amount": "9.99", "date": "2025-05-02"}
        )
    return user.token


# The schema the server publishes at /openapi.json, taken from the app itself (building the app
# opens no connection); test_api_fuzz_schema_is_the_served_one checks they are the same.
schema = schemathesis.openapi.from_dict(create_app("postgresql://unused").openapi())


def test_api_fuzz_schema_is_the_served_one(fuzz_server):
    with fuzz_server.client() as client:
        assert client.get("/openapi.json").json() == schema.raw_schema


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_api_fuzz_no_server_error_and_every_answer_conforms(case, fuzz_server, fuzz_token):
    # Valid-by-schema values the CLI's rules refuse (an amount of "abc" is a string) are a 422
    # by design, so positive_data_acceptance does not apply; every other check does.
    case.call_and_validate(
        base_url=fuzz_server.base_url,
        headers={"Authorization": f"Bearer {fuzz_token}"},
        excluded_checks=[openapi_checks.positive_data_acceptance],
    )
