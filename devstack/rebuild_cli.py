"""`splitstream rebuild`: the command line of services/collector/rebuild.py (the logic lives there)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from services.collector.adapters.fold import UnsupportedRedis, open_fold_redis
from services.collector.config import CollectorSettings
from services.collector.rebuild import Rebuild, RebuildFailed, RebuildRefused, RebuildReport

console = Console()


async def _run(settings: CollectorSettings, rebuild_options: dict[str, bool], progress: Progress) -> RebuildReport:
    tasks: list[TaskID] = []

    def advance(replayed: int, total: int) -> None:
        # Added at the first call, once the refusals are behind: a bar before a refusal would only confuse.
        if not tasks:
            tasks.append(progress.add_task("replaying the events topic", total=total))
        progress.update(tasks[0], completed=replayed, total=total)

    redis = await open_fold_redis(settings.redis_url)
    try:
        return await Rebuild(settings, redis, **rebuild_options).run(advance)
    finally:
        await redis.aclose()


def _summary(report: RebuildReport, settings: CollectorSettings) -> Table:
    table = Table(
        title=f"rebuild of {settings.events_topic} into {settings.redis_prefix}:*", title_justify="left",
        show_header=False,
    )
    table.add_column("what")
    table.add_column("figure")
    partitions = ", ".join(f"{p}: {n}" for p, n in sorted(report.replayed.items()))
    rows = [
        ("records replayed", f"{report.records} ({partitions})"),
        ("events applied", str(report.applied)),
        ("duplicates skipped", str(report.duplicates)),
        ("exposures to unknown experiments", str(report.orphan_exposures)),
        ("undecodable records (counted, not re-sent)", str(report.dead_letters)),
        ("keys swapped in", f"{report.keys_swapped} ({', '.join(f'{f} {n}' for f, n in report.renamed.items())})"),
        ("stale live keys deleted", str(report.deleted)),
        ("group offsets set to", ", ".join(f"{p}: {o}" for p, o in sorted(report.mark.items()))),
        ("seconds", f"{report.seconds:.1f}"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def rebuild_command(
    force: Annotated[bool, typer.Option(
        "--force", help="Run although the consumer group lists members (ones that died and have not expired yet)."
    )] = False,
    with_current_definitions: Annotated[bool, typer.Option(
        "--with-current-definitions",
        help="Run although experiments changed what the fold reads since creation: fold every event with today's "
             "definitions.",
    )] = False,
) -> None:
    """Replay the events topic from its start into fresh Redis keys and swap them in for the statistics.

    Stop the aggregation consumers first. Settings come from the SPLITSTREAM_* variables, like the consumer's.
    """
    settings = CollectorSettings()
    options = {"force": force, "with_current_definitions": with_current_definitions}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=console) as progress:
            report = asyncio.run(_run(settings, options, progress))
    except (RebuildRefused, RebuildFailed, UnsupportedRedis) as error:
        console.print(f"[red]rebuild {'failed' if isinstance(error, RebuildFailed) else 'refused'}:[/red] {error}")
        raise typer.Exit(1) from error
    if report.definitions_changed:
        changed = "; ".join(f"{key}: {', '.join(fields)}" for key, fields in report.definitions_changed.items())
        console.print(f"[yellow]folded with today's definitions, changed since creation:[/yellow] {changed}")
    console.print(_summary(report, settings))
