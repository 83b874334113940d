"""The /api/v1 router: each domain adds its router here (and the providers listing, see providers.py)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from imagestudio.accounts.admin import router as admin_router
from imagestudio.accounts.email_endpoints import router as email_router
from imagestudio.accounts.endpoints import router as accounts_router
from imagestudio.accounts.provider_key_endpoints import router as provider_keys_router
from imagestudio.api.providers import router as providers_router
from imagestudio.assets.curate_endpoints import router as curate_router
from imagestudio.assets.endpoints import router as assets_router
from imagestudio.generations.billing_endpoints import router as billing_router
from imagestudio.generations.caption_endpoints import router as captions_router
from imagestudio.generations.endpoints import router as generations_router
from imagestudio.generations.streams import router as streams_router
from imagestudio.generations.usage import router as usage_router
from imagestudio.kit.errors import PROBLEM_RESPONSES
from imagestudio.kit.text import refuse_unstorable_text
from imagestudio.operations.endpoints import router as export_router
from imagestudio.sessions.endpoints import router as sessions_router
from imagestudio.sessions.project_endpoints import router as projects_router
from imagestudio.sessions.public_endpoints import router as public_router
from imagestudio.uicode.endpoints import router as ui_router

API_PREFIX = "/api/v1"

# Text no database can store is refused for every route, before any of them runs.
api_router = APIRouter(prefix=API_PREFIX, dependencies=[Depends(refuse_unstorable_text)], responses=PROBLEM_RESPONSES)
api_router.include_router(accounts_router)
api_router.include_router(admin_router)
api_router.include_router(email_router)
api_router.include_router(projects_router)
api_router.include_router(provider_keys_router)
api_router.include_router(sessions_router)
api_router.include_router(generations_router)
api_router.include_router(streams_router)
# Before the assets router: /assets/archive must not be read as an asset id.
api_router.include_router(curate_router)
api_router.include_router(assets_router)
api_router.include_router(captions_router)
api_router.include_router(ui_router)
api_router.include_router(usage_router)
api_router.include_router(billing_router)
api_router.include_router(providers_router)
api_router.include_router(export_router)
api_router.include_router(public_router)
