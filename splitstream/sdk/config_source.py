"""The experiment definitions an SDK evaluates against: ``GET /v1/config``, kept fresh in the background.

The last good :class:`~splitstream.evaluation.Catalog` is kept until a newer one arrives: an unreachable
assignment service, an error answer or a document that does not validate only log a warning, so assignments keep
working on the definitions last seen.
"""

from __future__ import annotations

import logging
import threading

import httpx

from splitstream.evaluation import Catalog, CatalogDocument

log = logging.getLogger(__name__)


class ConfigSource:
    """Fetches the catalog with ``If-None-Match`` and refreshes it every ``refresh_seconds`` on a daemon thread."""

    def __init__(
        self, http: httpx.Client, assignment_url: str, *, refresh_seconds: float = 10.0, start_thread: bool = True
    ) -> None:
        if refresh_seconds <= 0:
            raise ValueError("refresh_seconds must be > 0")
        self._http = http
        self._url = assignment_url.rstrip("/") + "/v1/config"
        self._refresh_seconds = refresh_seconds
        self._catalog: Catalog | None = None
        self._etag: str | None = None
        self._refreshing = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        if start_thread:
            self.start()

    @property
    def catalog(self) -> Catalog | None:
        """The last catalog fetched, or None before the first successful fetch."""
        return self._catalog

    @property
    def etag(self) -> str | None:
        return self._etag

    def refresh(self) -> bool:
        """Fetch the catalog now; True when the catalog in use is the server's current one."""
        with self._refreshing:
            headers = {"If-None-Match": self._etag} if self._etag is not None and self._catalog is not None else {}
            try:
                response = self._http.get(self._url, headers=headers)
            except httpx.TransportError as error:
                return self._keep_last(f"the assignment service is unreachable ({error!r})")
            if response.status_code == httpx.codes.NOT_MODIFIED and self._catalog is not None:
                return True
            if response.status_code != httpx.codes.OK:
                return self._keep_last(f"GET {self._url} answered {response.status_code}: {response.text[:300]}")
            try:
                catalog = Catalog(CatalogDocument.model_validate_json(response.content))
            except ValueError as error:  # pydantic's ValidationError is one
                return self._keep_last(f"the config document is invalid: {error}")
            self._catalog = catalog
            self._etag = response.headers.get("etag") or catalog.etag
            return True

    def start(self) -> None:
        """Start the refresh thread (once); its first refresh comes ``refresh_seconds`` from now."""
        if self._thread is None and not self._stopped.is_set():
            self._thread = threading.Thread(target=self._run, name="splitstream-config-source", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 1.0) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stopped.wait(self._refresh_seconds):
            try:
                self.refresh()
            except Exception:  # the thread must outlive any surprise, or the catalog would silently go stale
                log.exception("config refresh failed unexpectedly")

    def _keep_last(self, problem: str) -> bool:
        kept = "keeping the last catalog" if self._catalog is not None else "no catalog loaded yet"
        log.warning("config refresh failed: %s; %s", problem, kept)
        return False
