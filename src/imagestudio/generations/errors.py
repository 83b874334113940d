"""Errors the generation services raise; each carries the stable code the API answers with."""

from __future__ import annotations

import uuid


class GenerationError(Exception):
    code = "generation_error"
    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidGenerationRequest(GenerationError):
    """A request that cannot be served as asked (answer 422); field names the input at fault."""

    code = "invalid_generation_request"
    status_code = 422

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class GenerationNotFound(GenerationError):
    code = "not_found"  # what the API answers: the same as for any other missing object
    status_code = 404

    def __init__(self, generation_id: uuid.UUID) -> None:
        super().__init__(f"no generation {generation_id}")
        self.generation_id = generation_id


class IdempotencyConflict(GenerationError):
    """The idempotency key was used before with a different request (answer 409)."""

    code = "idempotency_key_reused"
    status_code = 409

    def __init__(self, key: str, existing_id: uuid.UUID) -> None:
        super().__init__(f"idempotency key {key!r} was already used for a different request")
        self.key = key
        self.existing_id = existing_id


class InvalidGenerationState(GenerationError):
    """The generation's status does not allow the operation (answer 409)."""

    code = "invalid_generation_state"
    status_code = 409

    def __init__(self, generation_id: uuid.UUID, status: str, action: str) -> None:
        super().__init__(f"cannot {action} generation {generation_id}: it is {status}")
        self.generation_id = generation_id
        self.status = status
