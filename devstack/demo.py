"""A simulated content test driven through the real HTTP APIs: two title variants, a true +10% relative lift in
click-through for every kind of user. Users come from the app, the web or the mini-program, new or returning; the
experiment keeps segments by both. The simulator only sends traffic; every number in the readout comes from the
analyzer."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from devstack.config import StackConfig

TRUE_RELATIVE_LIFT = 0.10
CONTROL_CLICK_RATE = 0.10
MEAN_READING_MINUTES = 3.0
CHANNELS = (("app", 0.5), ("web", 0.3), ("mini_program", 0.2))
NEW_USER_SHARE = 0.35
SEGMENTS = ("channel", "is_new")


@dataclass(frozen=True, slots=True)
class DemoPlan:
    users: int = 20_000
    seed: int = 7
    # httpx's connection pool slows down past ~16 concurrent requests (measured: 48 gave 250 req/s, 16 gave 680).
    concurrency: int = 16
    batch_size: int = 500
    waves: int = 5
    """Users arrive in waves; after each, once the pipeline caught up, the analyzer takes a snapshot: the points of
    the report's charts over time."""


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _now() -> str:
    return datetime.now(UTC).isoformat()


async def _create_experiment(client: httpx.AsyncClient, base: str, admin: str, key: str, seed: int) -> None:
    spec = {
        "key": key,
        # The same salt on every run buckets the same users alike, so with the per-user behaviour below a demo with
        # a given seed reproduces its readout exactly, whatever the experiment's (timestamped) key.
        "salt": f"title-demo-{seed}",
        "variants": [{"key": "control_title", "weight": 0.5}, {"key": "question_title", "weight": 0.5}],
        "metrics": [
            {"key": "click_through", "type": "binomial", "event": "title_click", "role": "goal"},
            {"key": "reading_minutes", "type": "mean", "event": "read", "role": "guardrail", "margin": 0.05},
        ],
        # A demo runs for a minute, so the usual week-long minimum runtime is waived to show the call.
        "analysis": {"min_days": 0, "min_users_per_variant": 5000},
        "segments": list(SEGMENTS),
    }
    (await client.post(f"{base}/v1/experiments", json=spec, headers=_bearer(admin))).raise_for_status()
    (await client.post(f"{base}/v1/experiments/{key}/start", headers=_bearer(admin))).raise_for_status()


async def _assign_all(
    client: httpx.AsyncClient, base: str, ingest: str, key: str, plan: DemoPlan, users: range
) -> dict[str, str]:
    gate = asyncio.Semaphore(plan.concurrency)
    variants: dict[str, str] = {}

    async def assign(user_id: str) -> None:
        async with gate:
            body = {"user_id": user_id, "attributes": attributes_of(user_id, plan.seed), "experiments": [key]}
            answer = await client.post(f"{base}/v1/assign", json=body, headers=_bearer(ingest))
            answer.raise_for_status()
            [assignment] = answer.json()["assignments"]
            variants[user_id] = assignment["variant"]

    await asyncio.gather(*(assign(f"user-{i:06d}") for i in users))
    return variants


def attributes_of(user_id: str, seed: int) -> dict[str, str | bool]:
    """Where the user comes from and whether they are new: fixed per user and seed."""
    rng = random.Random(f"{seed}:{user_id}:attributes")
    channel = rng.choices([name for name, _ in CHANNELS], weights=[share for _, share in CHANNELS])[0]
    return {"channel": channel, "is_new": rng.random() < NEW_USER_SHARE}


def _behaviour(variants: dict[str, str], key: str, plan: DemoPlan) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for user_id, variant in sorted(variants.items()):
        rng = random.Random(f"{plan.seed}:{user_id}")  # per user: independent of the order assignments came back in
        rate = CONTROL_CLICK_RATE * (1 + TRUE_RELATIVE_LIFT) if variant == "question_title" else CONTROL_CLICK_RATE
        if rng.random() < rate:
            stamp = _now()
            events.append({"type": "event", "event_id": f"{key}-click-{user_id}", "user_id": user_id,
                           "name": "title_click", "timestamp": stamp})
            events.append({"type": "event", "event_id": f"{key}-read-{user_id}", "user_id": user_id,
                           "name": "read", "value": round(rng.expovariate(1 / MEAN_READING_MINUTES), 2),
                           "timestamp": stamp})
    return events


async def _send(client: httpx.AsyncClient, base: str, ingest: str, events: list[dict[str, Any]], size: int) -> None:
    for start in range(0, len(events), size):
        batch = events[start:start + size]
        answer = await client.post(f"{base}/v1/events", json={"events": batch}, headers=_bearer(ingest))
        answer.raise_for_status()
        if answer.json()["accepted"] != len(batch):
            raise RuntimeError(f"collector rejected events: {answer.text}")


async def _await_results(
    client: httpx.AsyncClient, base: str, read: str, key: str, users: int, clicks: int, within: float = 180
) -> dict[str, Any]:
    """Poll the analyzer until the pipeline has folded everything that was sent."""
    deadline = time.monotonic() + within
    results: dict[str, Any] = {}
    while time.monotonic() < deadline:
        answer = await client.get(f"{base}/v1/experiments/{key}/results", headers=_bearer(read))
        answer.raise_for_status()
        results = answer.json()
        counted_users = sum(v["users"] for v in results["variants"])
        counted_clicks = sum(v["sum"] for m in results["metrics"] if m["key"] == "click_through" for v in m["variants"])
        if counted_users == users and counted_clicks == clicks:
            return results
        await asyncio.sleep(0.5)
    raise RuntimeError(f"the analyzer did not catch up within {within:.0f}s; last answer: {results}")


def _percent(value: float | None, signed: bool = True) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.2%}" if signed else f"{value:.2%}"


def print_readout(console: Console, results: dict[str, Any]) -> bool:
    """Prints the analyzer's readout; True if the true lift lies inside the click-through CI."""
    console.print(f"\n[bold]Experiment {results['experiment']}[/bold] ({results.get('status', '')})")
    srm = results.get("srm") or {}
    if srm:
        console.print(f"Sample-ratio check: p = {srm.get('p_value')} ({srm.get('status')})")
    covered = False
    for metric in results["metrics"]:
        table = Table(title=f"{metric['key']} ({metric['type']})")
        for column in ("variant", "users", "sum", "mean", "lift vs control", "95% CI", "p-value"):
            table.add_column(column, justify="right")
        comparisons = {c["variant"]: c for c in metric["comparisons"]}
        for variant in metric["variants"]:
            row = [variant["key"], str(variant["n"]), f"{variant['sum']:.2f}", f"{variant['mean']:.4f}"]
            comparison = comparisons.get(variant["key"])
            if comparison is None:
                row += ["(control)", "", ""]
            else:
                interval = f"[{_percent(comparison['ci_lower'])}, {_percent(comparison['ci_upper'])}]"
                p_value = comparison["p_value"]
                row += [_percent(comparison["effect"]), interval, "n/a" if p_value is None else f"{p_value:.4g}"]
                if metric["key"] == "click_through" and comparison["ci_lower"] is not None:
                    covered = comparison["ci_lower"] <= TRUE_RELATIVE_LIFT <= comparison["ci_upper"]
            table.add_row(*row)
        console.print(table)
    for decision in results.get("decisions", []):
        console.print(f"Call for {decision['variant']}: [bold]{decision['verdict'].replace('_', ' ')}[/bold] — "
                      + "; ".join(decision["reasons"]))
    return covered


def print_segments(console: Console, segmented: dict[str, Any], metric: str) -> None:
    """One line per segment value: users per variant and the metric's lift, with p-values adjusted across the
    whole table."""
    table = Table(title=f"{metric} by {segmented['dimension']}")
    for column in ("segment", "users", "lift vs control", "95% CI", "adjusted p", "sample ratio"):
        table.add_column(column, justify="right")
    for segment in segmented["segments"]:
        [reading] = [m for m in segment["metrics"] if m["key"] == metric]
        [comparison] = reading["comparisons"]
        p_value = comparison["adjusted_p_value"]
        table.add_row(
            segment["value"], " / ".join(str(v["users"]) for v in segment["variants"]), _percent(comparison["effect"]),
            f"[{_percent(comparison['ci_lower'])}, {_percent(comparison['ci_upper'])}]",
            "n/a" if p_value is None else f"{p_value:.4g}", segment["srm"]["status"],
        )
    console.print(table)


def run(config: StackConfig, keys: dict[str, str], plan: DemoPlan, console: Console) -> bool:
    return asyncio.run(_run(config, keys, plan, console))


async def _run(config: StackConfig, keys: dict[str, str], plan: DemoPlan, console: Console) -> bool:
    key = f"title-test-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    admin, ingest, read = keys["SPLITSTREAM_ADMIN_KEY"], keys["SPLITSTREAM_INGEST_KEY"], keys["SPLITSTREAM_READ_KEY"]
    limits = httpx.Limits(max_connections=plan.concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        await _create_experiment(client, config.service_url("assignment"), admin, key, plan.seed)
        analyzer = config.service_url("analyzer")
        variants: dict[str, str] = {}
        clicks = 0
        wave_size = -(-plan.users // plan.waves)
        for wave, first in enumerate(range(0, plan.users, wave_size), start=1):
            began = time.monotonic()
            arrived = await _assign_all(client, config.service_url("assignment"), ingest, key, plan,
                                        range(first, min(first + wave_size, plan.users)))
            variants.update(arrived)
            events = _behaviour(arrived, key, plan)
            await _send(client, config.service_url("collector"), ingest, events, plan.batch_size)
            clicks += sum(1 for e in events if e["name"] == "title_click")
            sent = time.monotonic()
            results = await _await_results(client, analyzer, read, key, len(variants), clicks)
            (await client.post(f"{analyzer}/v1/experiments/{key}/snapshots", headers=_bearer(admin))).raise_for_status()
            console.print(f"wave {wave}/{plan.waves}: {len(arrived)} users assigned through the assignment API "
                          f"(exposures logged to Kafka) and {len(events)} events sent in {sent - began:.1f}s; the "
                          f"analyzer caught up {time.monotonic() - sent:.1f}s after the last event was accepted")
        segmented = []
        for dimension in SEGMENTS:
            answer = await client.get(f"{analyzer}/v1/experiments/{key}/results", params={"segment": dimension},
                                      headers=_bearer(read))
            answer.raise_for_status()
            segmented.append(answer.json())
    covered = print_readout(console, results)
    for table in segmented:
        print_segments(console, table, "click_through")
    verdict = "inside" if covered else "OUTSIDE"
    console.print(f"\nSimulated truth: click-through lift {TRUE_RELATIVE_LIFT:+.0%} — {verdict} the analyzer's 95% CI.")
    console.print(f"Report: {analyzer}/experiments/{key} (any user name; the read key from "
                  f"{config.run_dir / 'api-keys.env'} as the password)", soft_wrap=True)
    return covered
