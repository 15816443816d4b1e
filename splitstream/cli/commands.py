"""The ``splitstream`` commands: ``experiments list|show|create|start|pause|stop|ship``, ``results`` and ``power``.

They talk to the services over HTTP only. A program embedding them (the dev stack's ``splitstream`` entry point)
may pass a :class:`CliSetup` as click's ``obj`` to supply keys absent from the environment, its own default URLs
or, in tests, an HTTP transport.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.text import Text

from splitstream.cli import render
from splitstream.cli.client import ADMIN_KEY_VARIABLE, READ_KEY_VARIABLE, CliError, JsonObject, SplitStreamClient

DEFAULT_ASSIGNMENT_URL = "http://127.0.0.1:8001"
DEFAULT_ANALYZER_URL = "http://127.0.0.1:8003"
ASSIGNMENT_URL_VARIABLE = "SPLITSTREAM_ASSIGNMENT_URL"
ANALYZER_URL_VARIABLE = "SPLITSTREAM_ANALYZER_URL"
# Wide enough for the results tables when the output is a file or a CI log rather than a terminal.
PIPED_WIDTH = 140


def _no_stored_keys() -> Mapping[str, str]:
    return {}


@dataclass(frozen=True, slots=True)
class CliSetup:
    """What the embedding program hands the commands through click's ``obj``."""

    fallback_keys: Callable[[], Mapping[str, str]] = _no_stored_keys
    """Variable name → key, read only when a key variable is unset."""
    assignment_url: str = DEFAULT_ASSIGNMENT_URL
    analyzer_url: str = DEFAULT_ANALYZER_URL
    transport: httpx.BaseTransport | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Session:
    """The root options of one invocation, kept in typer's context for the commands."""

    assignment_url: str
    analyzer_url: str
    setup: CliSetup

    def keys(self) -> dict[str, str | None]:
        keys = {name: os.environ.get(name) or None for name in (ADMIN_KEY_VARIABLE, READ_KEY_VARIABLE)}
        if None in keys.values():
            stored = self.setup.fallback_keys()
            keys = {name: key or stored.get(name) or None for name, key in keys.items()}
        return keys

    def client(self) -> SplitStreamClient:
        keys = self.keys()
        return SplitStreamClient(
            self.assignment_url, self.analyzer_url, admin_key=keys[ADMIN_KEY_VARIABLE],
            read_key=keys[READ_KEY_VARIABLE], transport=self.setup.transport,
        )


def configure(
    ctx: typer.Context,
    assignment_url: Annotated[
        str | None,
        typer.Option(envvar=ASSIGNMENT_URL_VARIABLE, show_default=DEFAULT_ASSIGNMENT_URL,
                     help="Base URL of the assignment service (experiment administration)."),
    ] = None,
    analyzer_url: Annotated[
        str | None,
        typer.Option(envvar=ANALYZER_URL_VARIABLE, show_default=DEFAULT_ANALYZER_URL,
                     help="Base URL of the analyzer (results, power)."),
    ] = None,
) -> None:
    """SplitStream from the command line. Keys come from SPLITSTREAM_ADMIN_KEY and SPLITSTREAM_READ_KEY."""
    setup = ctx.obj if isinstance(ctx.obj, CliSetup) else CliSetup()
    ctx.obj = Session(assignment_url or setup.assignment_url, analyzer_url or setup.analyzer_url, setup)


app = typer.Typer(
    help="SplitStream from the command line.", callback=configure, no_args_is_help=True, add_completion=False
)
experiments_app = typer.Typer(
    help="List, inspect, create and move experiments along (assignment service).", no_args_is_help=True
)
app.add_typer(experiments_app, name="experiments")


def _console(*, stderr: bool = False) -> Console:
    # Built per call, so that FORCE_COLOR, NO_COLOR and the output stream in force at that moment apply.
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, highlight=False, width=None if stream.isatty() else PIPED_WIDTH)


def _session(ctx: typer.Context) -> Session:
    session = ctx.find_object(Session)
    if session is not None:
        return session
    # Registered in an app without :func:`configure` as its callback: the defaults and the environment decide.
    setup = ctx.find_object(CliSetup) or CliSetup()
    return Session(
        os.environ.get(ASSIGNMENT_URL_VARIABLE) or setup.assignment_url,
        os.environ.get(ANALYZER_URL_VARIABLE) or setup.analyzer_url,
        setup,
    )


def print_error(error: CliError) -> None:
    console = _console(stderr=True)
    line = Text("error: ", style="bold red")
    line.append(error.message)
    if error.status_code is not None:
        line.append(f" (HTTP {error.status_code}{' ' + error.code if error.code else ''})", style="dim")
    console.print(line)
    for problem in error.fields:
        console.print(Text(f"  {problem.field}: {problem.reason}"))


@contextmanager
def _calling(ctx: typer.Context) -> Iterator[SplitStreamClient]:
    """A client for the command; any :class:`CliError` is printed and ends the command with status 1."""
    try:
        with _session(ctx).client() as client:
            yield client
    except CliError as error:
        print_error(error)
        raise typer.Exit(1) from error


def _state(experiment: JsonObject) -> str:
    return f"{experiment.get('key')}: version {experiment.get('version')}, {experiment.get('status')}"


@experiments_app.command("list")
def list_experiments(ctx: typer.Context) -> None:
    """Every experiment with its status, phase, version, variants and coverage."""
    with _calling(ctx) as client:
        experiments = client.list_experiments()
    if not experiments:
        _console().print("No experiments yet.")
        return
    _console().print(render.experiments_table(experiments))


@experiments_app.command("show")
def show_experiment(ctx: typer.Context, key: Annotated[str, typer.Argument(help="The experiment's key.")]) -> None:
    """The experiment's definition (JSON) and its history: who changed what, when."""
    with _calling(ctx) as client:
        definition = client.get_experiment(key)
        history = client.experiment_history(key)
    console = _console()
    console.print_json(data=definition)
    console.print(render.history_table(history))


def _read_definition(path: Path) -> JsonObject:
    try:
        definition: Any = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as error:
        raise CliError(f"cannot read {path}: {error}") from error
    except json.JSONDecodeError as error:
        raise CliError(f"{path} is not JSON: {error}") from error
    if not isinstance(definition, dict):
        raise CliError(f"{path} must hold one JSON object (the experiment definition)")
    return definition


@experiments_app.command("create")
def create_experiment(
    ctx: typer.Context,
    file: Annotated[
        Path, typer.Option("--file", "-f", dir_okay=False, help="The definition, as POST /v1/experiments takes it.")
    ],
    start: Annotated[bool, typer.Option("--start", help="Start it right after creating it.")] = False,
) -> None:
    """Create an experiment from a JSON definition (a draft unless --start)."""
    with _calling(ctx) as client:
        experiment = client.create_experiment(_read_definition(file))
        _console().print(Text(f"created {_state(experiment)}"))
        if start:
            experiment = client.start_experiment(str(experiment.get("key", "")))
            _console().print(Text(f"started {_state(experiment)}"))


KeyArgument = Annotated[str, typer.Argument(help="The experiment's key.")]


@experiments_app.command("start")
def start_experiment(ctx: typer.Context, key: KeyArgument) -> None:
    """Start (or resume) assigning users: draft or paused → running."""
    with _calling(ctx) as client:
        _console().print(Text(f"started {_state(client.start_experiment(key))}"))


@experiments_app.command("pause")
def pause_experiment(ctx: typer.Context, key: KeyArgument) -> None:
    """Pause: nobody enters or sees a treatment; start resumes it in the same phase."""
    with _calling(ctx) as client:
        _console().print(Text(f"paused {_state(client.pause_experiment(key))}"))


@experiments_app.command("stop")
def stop_experiment(ctx: typer.Context, key: KeyArgument) -> None:
    """Stop without a winner: everyone sees the control."""
    with _calling(ctx) as client:
        _console().print(Text(f"stopped {_state(client.stop_experiment(key))}"))


@experiments_app.command("ship")
def ship_experiment(
    ctx: typer.Context, key: KeyArgument, variant: Annotated[str, typer.Argument(help="The winning variant.")]
) -> None:
    """Ship VARIANT: every targeted user outside the holdouts sees it from now on."""
    with _calling(ctx) as client:
        experiment = client.ship_experiment(key, variant)
    _console().print(Text(f"shipped {experiment.get('shipped_variant', variant)} of {_state(experiment)}"))


class ReadMethod(StrEnum):
    """The methods a single read may choose (a group-sequential plan's looks are scheduled, not chosen)."""

    FREQUENTIST = "frequentist"
    BAYESIAN = "bayesian"
    SEQUENTIAL = "sequential"


def _directions(client: SplitStreamClient, key: str) -> dict[str, bool]:
    """Metric key → higher_is_better, from the definition; the results do not carry it."""
    try:
        definition = client.get_experiment(key)
    except CliError as error:
        _console(stderr=True).print(
            Text(f"warning: cannot read the definition of {key} ({error.message}); colours assume higher is better",
                 style="yellow")
        )
        return {}
    return {str(metric.get("key")): bool(metric.get("higher_is_better", True))
            for metric in definition.get("metrics", [])}


def results_command(
    ctx: typer.Context,
    key: KeyArgument,
    segment: Annotated[
        str | None, typer.Option(help="One of the experiment's segment dimensions: a table per value.")
    ] = None,
    method: Annotated[
        ReadMethod | None, typer.Option(help="Read by this method instead of the plan's.", case_sensitive=False)
    ] = None,
) -> None:
    """The experiment's results: a table per metric (green: significant improvement, red: significant harm),
    then the calls with their reasons."""
    with _calling(ctx) as client:
        answer = client.results(key, segment=segment, method=None if method is None else method.value)
        directions = _directions(client, key)
    view = render.segment_results_view if "segments" in answer else render.results_view
    _console().print(view(answer, directions))


def power_command(
    ctx: typer.Context,
    baseline_rate: Annotated[float, typer.Option(help="The control's conversion rate, e.g. 0.1.")],
    mde: Annotated[float, typer.Option(help="Smallest relative lift worth detecting, e.g. 0.05 for +5%.")],
    variants: Annotated[int, typer.Option(help="Number of variants, control included.")] = 2,
    daily_users: Annotated[int | None, typer.Option(help="New eligible users a day, to estimate the days.")] = None,
    alpha: Annotated[float, typer.Option(help="Significance level (two-sided).")] = 0.05,
    power: Annotated[float, typer.Option(help="Chance to detect a true lift of the MDE.")] = 0.8,
) -> None:
    """Users per variant (and days) a binomial test needs, from the analyzer's power calculator."""
    with _calling(ctx) as client:
        estimate = client.power(
            baseline_rate=baseline_rate, relative_mde=mde, variants=variants, daily_users=daily_users, alpha=alpha,
            power=power,
        )
    _console().print(render.power_view(estimate, variants, daily_users))


app.command("results")(results_command)
app.command("power")(power_command)
