"""Property-based checks of the whole API from its own OpenAPI description, as a signed-in program
(an API key with read and generate scopes), with all of schemathesis's checks: no answer is a 5xx,
every answer has a documented status, content type and shape, schema-valid requests are accepted
and schema-violating ones refused. Bounded: a few examples per operation and
generation mode, derandomized so a run is repeatable."""

from __future__ import annotations

import schemathesis
import schemathesis.specs.openapi.checks  # registers the OpenAPI checks
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS as REGISTERED_CHECKS

from imagestudio.app import create_app
from tests.api.helpers import Accounts

EXAMPLES = 8
# Every check schemathesis has (as `st run --checks all`): answers match the document, and the
# document states every rule the server enforces (valid data accepted, invalid data refused,
# Allow headers that name every method of a path, ...).
CHECKS = REGISTERED_CHECKS.get_all()


def test_no_input_makes_a_server_error_and_answers_match_the_schema(container, database_kind) -> None:
    # No in-process worker: the lifespan schemathesis starts lives until the test process ends.
    container.settings.workers = 0
    app = create_app(container=container)
    key = Accounts(app, container).make().api_key(scopes=["read", "generate"])
    headers = {"Authorization": f"Bearer {key}"}
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)
    cases = 0
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
            def check(case) -> None:
                nonlocal cases
                cases += 1
                case.call_and_validate(headers=headers, checks=CHECKS)

            try:
                check()
            except Unsatisfiable:
                # Nothing to get wrong (an operation without parameters or body): no negative cases.
                assert mode == GenerationMode.NEGATIVE
    print(f"\nschemathesis on {database_kind}: {len(operations)} operations, {cases} cases, all passed")
    assert cases >= len(operations) * 2
