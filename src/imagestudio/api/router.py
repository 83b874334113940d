"""The /api/v1 router: each domain adds its router here."""

from __future__ import annotations

from fastapi import APIRouter

from imagestudio.accounts.admin import router as admin_router
from imagestudio.accounts.endpoints import router as accounts_router
from imagestudio.accounts.projects import router as projects_router

API_PREFIX = "/api/v1"

api_router = APIRouter(prefix=API_PREFIX)
api_router.include_router(accounts_router)
api_router.include_router(admin_router)
api_router.include_router(projects_router)
