"""Alerts: a webhook message (Slack-compatible ``{"text": ...}``) when something about a running experiment needs a
person: a sample-ratio mismatch, a harmed guardrail (optionally stopping the experiment), or a call reached.

Peeking-safe: experiments are read by always-valid confidence sequences (a group-sequential plan by its own
scheduled looks), so checking every minute does not inflate false alarms; harm and calls wait until every
variant has the plan's minimum users. Each cause fires once: a Redis marker per experiment phase and cause is
set before sending and removed again if the webhook did not take the message, so the next pass retries it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx
import structlog
from redis.asyncio import Redis

from services.analyzer.schemas import ExperimentResults
from services.analyzer.service import Overrides, ResultsService
from services.analyzer.stats.decision import harmed
from splitstream.experiment import AnalysisMethod, Difference, Experiment, ExperimentStatus, MetricRole
from splitstream.keys import RedisKeys, stats_scope
from splitstream.registry import ExperimentRegistry

log = structlog.get_logger(__name__)

CALLS = frozenset({"ship", "roll_back", "proved_neutral"})
MARKER_TTL_SECONDS = 180 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Alert:
    cause: str
    """Stable per experiment phase: ``srm``, ``guardrail:{metric}:{variant}``, ``call:{variant}:{verdict}``."""
    text: str
    stop: bool = False


def alerts_for(experiment: Experiment, results: ExperimentResults, *, stop_on_harm: bool) -> list[Alert]:
    """What ``results`` (read peeking-safe) call for, before deduplication."""
    name = f"*{experiment.name or experiment.key}* (`{experiment.key}`, phase {experiment.phase})"
    found = []
    if results.srm.status == "mismatch":
        found.append(Alert("srm", f"Sample ratio mismatch in {name}: users are not split as the weights say "
                                  f"(p = {results.srm.p_value:.2g}). Its results cannot be trusted until the cause "
                                  "is found."))
    if min((variant.users for variant in results.variants), default=0) < experiment.analysis.min_users_per_variant:
        return found
    definitions = {metric.key: metric for metric in experiment.metrics}
    for metric in results.metrics:
        definition = definitions[metric.key]
        if definition.role is not MetricRole.GUARDRAIL:
            continue
        for comparison in metric.comparisons:
            if comparison.effect is None or comparison.ci_lower is None or comparison.ci_upper is None:
                continue
            sign = 1.0 if definition.higher_is_better else -1.0
            upper_good = comparison.ci_upper if sign > 0 else -comparison.ci_lower
            if harmed(sign * comparison.effect, upper_good, definition.margin):
                found.append(Alert(
                    f"guardrail:{metric.key}:{comparison.variant}",
                    f"Guardrail *{metric.key}* harmed by {comparison.variant} in {name}: {comparison.effect:+.2%} "
                    f"[{comparison.ci_lower:+.2%}, {comparison.ci_upper:+.2%}], beyond its {definition.margin:.2%}"
                    " margin." + (" The experiment was stopped." if stop_on_harm else ""),
                    stop=stop_on_harm,
                ))
    for decision in results.decisions:
        if decision.verdict in CALLS:
            found.append(Alert(
                f"call:{decision.variant}:{decision.verdict}",
                f"Call reached in {name} for {decision.variant}: *{decision.verdict.replace('_', ' ')}* — "
                + "; ".join(decision.reasons),
            ))
    return found


class AlertWatcher:
    def __init__(
        self, registry: ExperimentRegistry, results: ResultsService, redis: Redis, keys: RedisKeys,
        http: httpx.AsyncClient, *, webhook_url: str, stop_on_harm: bool, assignment_url: str, admin_key: str,
    ) -> None:
        self._registry = registry
        self._results = results
        self._redis = redis
        self._keys = keys
        self._http = http
        self._webhook_url = webhook_url
        self._stop_on_harm = stop_on_harm
        self._assignment_url = assignment_url.rstrip("/")
        self._admin_key = admin_key

    async def check_all(self) -> list[Alert]:
        """One pass over the running experiments; the alerts sent."""
        sent = []
        for key in await self._registry.list_keys():
            experiment = await self._registry.get(key)
            if experiment is None or experiment.status is not ExperimentStatus.RUNNING:
                continue
            planned = experiment.analysis.method is AnalysisMethod.GROUP_SEQUENTIAL
            # Lifts (the alerts state them as percentages), read peeking-safe unless the plan schedules its looks.
            results = await self._results.results(key, overrides=Overrides(
                method=None if planned else AnalysisMethod.SEQUENTIAL, difference=Difference.RELATIVE,
            ))
            for alert in alerts_for(experiment, results, stop_on_harm=self._stop_on_harm):
                if await self._send_once(experiment, alert):
                    sent.append(alert)
        return sent

    async def run(self, interval_seconds: float) -> None:
        while True:
            try:
                await self.check_all()
            except Exception:  # logged; the next pass tries again
                log.exception("alert_pass_failed")
            await asyncio.sleep(interval_seconds)

    async def _send_once(self, experiment: Experiment, alert: Alert) -> bool:
        marker = f"{self._keys.experiment(stats_scope(experiment.key, experiment.phase))}:alert:{alert.cause}"
        if not await self._redis.set(marker, "1", nx=True, ex=MARKER_TTL_SECONDS):
            return False
        try:
            if alert.stop:
                answer = await self._http.post(
                    f"{self._assignment_url}/v1/experiments/{experiment.key}/stop",
                    headers={"Authorization": f"Bearer {self._admin_key}"},
                )
                answer.raise_for_status()
            (await self._http.post(self._webhook_url, json={"text": alert.text})).raise_for_status()
        except httpx.HTTPError as error:
            await self._redis.delete(marker)
            log.warning("alert_not_delivered", experiment=experiment.key, cause=alert.cause, error=repr(error))
            return False
        return True
