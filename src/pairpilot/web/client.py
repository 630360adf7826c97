"""The built browser client, served by this server (no CDN): pages, assets, Pyodide."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from pairpilot.web.deps import ServicesDep

router = APIRouter()


class ConfigOut(BaseModel):
    """What the browser needs to know at start."""

    browser_sentry_dsn: str | None
    # Both or neither: the page takes Supabase sessions only with the key to refresh them.
    supabase_url: str | None
    # Public by design: Supabase puts the anon key in every page of a Supabase app.
    supabase_anon_key: str | None


@router.get("/api/config", tags=["client"])
async def client_config(services: ServicesDep) -> ConfigOut:
    """Public client configuration (no secrets)."""
    settings = services.settings
    supabase = settings.supabase_url is not None and settings.supabase_anon_key is not None
    return ConfigOut(
        browser_sentry_dsn=settings.browser_sentry_dsn,
        supabase_url=settings.supabase_url if supabase else None,
        supabase_anon_key=settings.supabase_anon_key if supabase else None,
    )


def mount_client(app: FastAPI, client_dir: Path) -> None:
    """Serve index.html at / and /r/{room}, and the bundle's static folders."""
    index = client_dir / "index.html"

    async def page() -> FileResponse | JSONResponse:
        if not index.is_file():
            return JSONResponse(
                {"error": "client_not_built", "message": "run scripts/setup.sh to build client/"},
                status_code=503,
            )
        return FileResponse(index, headers={"Cache-Control": "no-cache"})

    worker = client_dir / "sw.js"

    async def service_worker() -> FileResponse | JSONResponse:
        # no-cache: a browser asks for it again at each check, so a new build replaces the old.
        if not worker.is_file():
            return JSONResponse(
                {"error": "client_not_built", "message": "run scripts/setup.sh to build client/"},
                status_code=404,
            )
        return FileResponse(
            worker, media_type="text/javascript", headers={"Cache-Control": "no-cache"}
        )

    app.add_api_route("/", page, methods=["GET"], include_in_schema=False, response_model=None)
    app.add_api_route(
        "/sw.js", service_worker, methods=["GET"], include_in_schema=False, response_model=None
    )
    app.add_api_route(
        "/r/{room_id}", page, methods=["GET"], include_in_schema=False, response_model=None
    )
    for folder in ("assets", "pyodide"):
        path = client_dir / folder
        if path.is_dir():
            app.mount(f"/{folder}", StaticFiles(directory=path), name=folder)
