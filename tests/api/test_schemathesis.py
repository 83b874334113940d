"""Property-based checks of the whole API from its own OpenAPI description, as a signed-in program
(an API key with read and generate scopes), with all of schemathesis's checks: no answer is a 5xx,
every answer has a documented status, content type and shape, schema-valid requests are accepted
and schema-violating ones refused. Bounded: a few examples per operation and
generation mode, derandomized so a run is repeatable."""

from __future__ import annotations

import pytest
import schemathesis
import schemathesis.specs.openapi.checks  # registers the OpenAPI checks
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS as REGISTERED_CHECKS
from schemathesis.specs.openapi.checks import positive_data_acceptance

from imagestudio.app import create_app
from tests.api.helpers import Accounts

EXAMPLES = 8

# No OpenAPI keyword can say that a referenced object exists (a project, an image, a registered
# provider) or that a file's bytes are an image, so schema-valid requests naming a missing object
# (422 "No such ...", "Unknown provider ...") or sending a non-image file are the server's to
# refuse. Every other refusal of valid data fails the run.
_FILE_CONTENT_CODES = {"unsupported_image", "invalid_image", "empty_file", "image_too_large"}
_MISSING_OBJECT = ("No such ", "Unknown provider ")
# Operations whose parameter limits are being moved to one place (issue 9, request part): until then
# their schema does not state every limit (e.g. the aspect ratio's 8:1), so valid-data acceptance is
# not checked there. Remove an entry once its schema states the limits.
_LIMITS_NOT_YET_STATED = {"POST /api/v1/generations"}


def _refuses_what_no_schema_can_state(response) -> bool:
    if response.status_code not in (415, 422):
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    if body.get("code") in _FILE_CONTENT_CODES:
        return True
    errors = body.get("errors") or []
    missing = all(error["message"].startswith(_MISSING_OBJECT) for error in errors)
    return response.status_code == 422 and bool(errors) and missing


def positive_data_acceptance_of_what_a_schema_can_state(ctx, response, case):
    if case.operation.label in _LIMITS_NOT_YET_STATED or _refuses_what_no_schema_can_state(response):
        return None
    return positive_data_acceptance(ctx, response, case)


# Every check schemathesis has (as `st run --checks all`): answers match the document, and the
# document states every rule the server enforces (valid data accepted, invalid data refused,
# Allow headers that name every method of a path, ...).
CHECKS = [
    positive_data_acceptance_of_what_a_schema_can_state if check is positive_data_acceptance else check
    for check in REGISTERED_CHECKS.get_all()
]


@pytest.mark.slow  # about two minutes a database
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
