"""The report's routes: ``GET /experiments`` (every experiment), ``GET /experiments/{key}`` (its report), and the
two scripts they load. Pages need the read key; a browser navigating to one cannot send a Bearer header, so a 401
asks for HTTP Basic (the key as the password, splitstream/auth.py). The scripts need no key."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import structlog
from fastapi import APIRouter, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse

from services.analyzer.report import pages
from services.analyzer.report.labels import choose_lang, label
from services.analyzer.report.verdict import Lang
from services.analyzer.report.view import build_view
from services.analyzer.schemas import ExperimentSummary
from services.analyzer.service import Overrides, ResultsService
from services.analyzer.timeseries import TimeseriesService
from splitstream.auth import BASIC_CHALLENGE, Scope, require
from splitstream.errors import Forbidden, NotFound, SplitStreamError, Unauthorized
from splitstream.experiment import Difference
from splitstream.registry import ExperimentRegistry

log = structlog.get_logger(__name__)

REPORT_DIR = Path(__file__).resolve().parent
ECHARTS_PATH = REPORT_DIR / "node_modules" / "echarts" / "dist" / "echarts.min.js"
"""Installed from the npm registry by ``make install`` (``npm ci --prefix services/analyzer/report``)."""
REPORT_JS_PATH = REPORT_DIR / "static" / "report.js"

PAGE_HEADERS = {
    "Cache-Control": "private, no-store",
    # Only our own scripts run: the data block is JSON, never executed, and nothing is loaded from elsewhere.
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src 'self' "
                               "data:; connect-src 'none'; base-uri 'none'; form-action 'none'; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
SCRIPT_CACHE_CONTROL = "public, max-age=300"

router = APIRouter(include_in_schema=False)

LangQuery = Annotated[str | None, Query(description="zh or en; from Accept-Language when absent")]


def echarts_path() -> Path | None:
    """The chart library, or None (with a warning) when it was not installed: the report then renders its text."""
    if ECHARTS_PATH.is_file():
        return ECHARTS_PATH
    log.warning("echarts_missing", path=str(ECHARTS_PATH),
                fix="run `make install` (npm ci --prefix services/analyzer/report)")
    return None


def _lang(request: Request, query: str | None) -> Lang:
    return choose_lang(query, request.headers.get("accept-language"))


def _html(text: str, status_code: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    return HTMLResponse(text, status_code=status_code, headers={**PAGE_HEADERS, **(headers or {})})


def _error(error: SplitStreamError, lang: Lang) -> HTMLResponse:
    headers = dict(error.headers)
    explanation = None
    if isinstance(error, Unauthorized):
        headers["WWW-Authenticate"] = BASIC_CHALLENGE
        explanation = label("unauthorized", lang)
    elif isinstance(error, Forbidden):
        explanation = label("forbidden", lang)
    elif isinstance(error, NotFound):
        explanation = label("not_found", lang)
    return _html(pages.error_page(error.status_code, error.message, lang, explanation), error.status_code, headers)


async def _list_rows(request: Request) -> list[pages.ListRow]:
    registry: ExperimentRegistry = request.state.registry
    results_service: ResultsService = request.state.results
    rows = []
    for key in await registry.list_keys():
        experiment = await registry.get(key)
        try:
            results = await results_service.results(key)
        except NotFound:  # deleted between the listing and the read
            continue
        summary = ExperimentSummary.of(results)
        rows.append(pages.ListRow(
            key=key, name="" if experiment is None else experiment.name, status=summary.status.value,
            phase=summary.phase, users=summary.users,
            calls=[(decision.variant, decision.verdict) for decision in summary.decisions],
        ))
    return rows


LIFTS = Overrides(difference=Difference.RELATIVE)
"""The report reads every comparison as a lift, whatever scale the plan leads with for the API."""


@router.get("/experiments", response_class=HTMLResponse)
async def experiments_page(request: Request, lang: LangQuery = None) -> Response:
    """Every experiment with its status, phase, users and current call, each linking to its report."""
    chosen = _lang(request, lang)
    try:
        await require(Scope.READ)(request)
        rows = await _list_rows(request)
    except SplitStreamError as error:
        return _error(error, chosen)
    return _html(pages.list_page(rows, chosen))


@router.get("/experiments/{key}", response_class=HTMLResponse)
async def report_page(
    request: Request, key: Annotated[str, PathParam(description="the experiment's key")], lang: LangQuery = None,
) -> Response:
    """One experiment's report: the call in plain words, warnings, charts and segment tables."""
    chosen = _lang(request, lang)
    results_service: ResultsService = request.state.results
    timeseries_service: TimeseriesService = request.state.timeseries
    try:
        await require(Scope.READ)(request)
        experiment = await results_service.experiment_for_reading(key)
        results = await results_service.results(key, overrides=LIFTS)
        timeseries = await timeseries_service.series(key)
        segments = [
            await results_service.segments(key, dimension, overrides=LIFTS) for dimension in experiment.segments
        ]
    except SplitStreamError as error:
        return _error(error, chosen)
    view = build_view(experiment, results, timeseries, segments, datetime.now(UTC))
    return _html(pages.report_page(view, chosen, charts_available=echarts_path() is not None))


@router.get("/static/echarts.min.js")
async def echarts_script() -> Response:
    path = echarts_path()
    if path is None:
        raise NotFound("the chart library is not installed: run `make install`")
    return FileResponse(path, media_type="text/javascript", headers={"Cache-Control": SCRIPT_CACHE_CONTROL})


@router.get("/static/report.js")
async def report_script() -> Response:
    if not REPORT_JS_PATH.is_file():  # an install that left the package's static files out
        raise NotFound("the report's script is not installed")
    return FileResponse(REPORT_JS_PATH, media_type="text/javascript", headers={"Cache-Control": SCRIPT_CACHE_CONTROL})
