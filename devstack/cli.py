"""`python -m devstack up|down|status|demo|simulate|test`: what the Makefile targets call."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from typing import Annotated

import typer
from rich.console import Console

from devstack import api_keys, stack
from devstack.config import PROJECT_ROOT, StackConfig, dev_config, test_config
from devstack.errors import StackError
from devstack.kafka import broker_process
from devstack.rebuild_cli import rebuild_command
from devstack.redis_server import server_process
from devstack.services import SERVICES, process_of
from devstack.simulate.catalog import SCENARIOS, ScenarioName
from devstack.simulate.simulation import SimulationPlan
from devstack.simulate.simulation import run as run_simulation
from devstack.simulate.traffic import Endpoints, SimulationError
from splitstream.cli import commands as cli_commands
from splitstream.eventlog import EVENTS_TOPIC_CONFIGS, ensure_topics
from splitstream.settings import CommonSettings

app = typer.Typer(
    add_completion=False, no_args_is_help=True, callback=cli_commands.configure,
    help="Run SplitStream's local stack, and manage and read experiments on it.",
)
# Wide enough for the readout's tables when the output is a file or a CI log rather than a terminal.
console = Console(width=None if sys.stdout.isatty() else 120)

# The test stack's services get the keys tests/conftest.py uses, so tests can call them.
TEST_API_KEYS = {
    "SPLITSTREAM_ADMIN_KEY": "test-admin-key",
    "SPLITSTREAM_INGEST_KEY": "test-ingest-key",
    "SPLITSTREAM_READ_KEY": "test-read-key",
}


def _say(line: str) -> None:
    console.print(line, highlight=False)


def _up(config: StackConfig) -> stack.StackInfo:
    try:
        return stack.up(config, say=_say)
    except StackError as error:
        console.print(f"[red]could not start the {config.profile} stack:[/red] {error}")
        raise typer.Exit(1) from error


def _stop_hint(config: StackConfig) -> str:
    return "make down" if config.profile == "dev" else "python -m devstack down --test"


@app.command()
def up() -> None:
    """Start Kafka, Redis and the services (idempotent)."""
    config = dev_config()
    began = time.monotonic()
    info = _up(config)
    _say(f"stack up in {time.monotonic() - began:.1f}s (kafka {info.timings['kafka']:.1f}s); "
         f"logs in {config.log_dir}; stop with `{_stop_hint(config)}`")


@app.command()
def down(test: Annotated[bool, typer.Option(help="Stop the test stack instead.")] = False) -> None:
    """Stop what `up` started: services, then Kafka, then Redis."""
    stack.down(test_config() if test else dev_config(), say=_say)


@app.command()
def status() -> None:
    """Show which parts of the dev stack are running."""
    config = dev_config()
    processes = [server_process(config), broker_process(config), *(process_of(config, s) for s in SERVICES)]
    for process in processes:
        pid = process.pid()
        _say(f"{process.name:<11} {'running (pid ' + str(pid) + ')' if pid else 'stopped'}")


def _simulate(scenario: ScenarioName, plan: SimulationPlan) -> None:
    """Start the dev stack (idempotent: a running one is kept, changed services restarted), run the scenario
    through it, and end with the report's address."""
    config = dev_config()
    began = time.monotonic()
    info = _up(config)
    _say(f"stack ready in {time.monotonic() - began:.1f}s (kafka {info.timings['kafka']:.1f}s)\n")
    endpoints = Endpoints.with_keys(config.service_url("assignment"), config.service_url("collector"),
                                    config.service_url("analyzer"), info.keys)
    try:
        outcome = run_simulation(SCENARIOS[scenario], endpoints, plan, console)
    except SimulationError as error:
        console.print(f"[red]the simulation failed:[/red] {error}", highlight=False)
        raise typer.Exit(1) from error
    _say(f"\n{scenario.value} simulation finished {time.monotonic() - began:.1f}s after start. The stack keeps "
         f"running: assignment {config.service_url('assignment')}, collector {config.service_url('collector')}, "
         f"analyzer {config.service_url('analyzer')}; keys in {config.run_dir / 'api-keys.env'}. "
         f"Stop it with `make down`.")
    console.print(f"Report: {outcome.report_url} (any user name; the read key from "
                  f"{config.run_dir / 'api-keys.env'} as the password)", soft_wrap=True, highlight=False)


Users = Annotated[int, typer.Option(min=100, help="Simulated users.")]
Seed = Annotated[int, typer.Option(help="Seed of the simulated behaviour.")]


@app.command("demo")
def run_demo(users: Users = 20_000, seed: Seed = 7) -> None:
    """Start the stack, run the simulated content test (`simulate --scenario content`) and print the readout."""
    _simulate(ScenarioName.CONTENT, SimulationPlan(users=users, seed=seed))


@app.command("simulate")
def simulate(
    scenario: Annotated[ScenarioName, typer.Option(help="What to simulate.")],
    users: Users = 20_000,
    seed: Seed = 7,
    waves: Annotated[int, typer.Option(min=1, help="Users arrive in this many waves, each ending with an analyzer "
                                                   "snapshot (a point of the report's charts).")] = 5,
) -> None:
    """Start the stack and drive a simulated content, pricing or campaign experiment through the HTTP APIs, with
    a progress bar; print the analyzer's readout against the simulated truth, and the report's address."""
    _simulate(scenario, SimulationPlan(users=users, seed=seed, waves=waves))


def _run_step(name: str, argv: list[str], env: dict[str, str]) -> int:
    _say(f"\n[bold]== {name}[/bold]: {' '.join(argv[2:])}")
    began = time.monotonic()
    code = subprocess.run(argv, cwd=PROJECT_ROOT, env=env, check=False).returncode
    _say(f"== {name} exited {code} after {time.monotonic() - began:.1f}s")
    return code


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def test(context: typer.Context) -> None:
    """Start a private stack (own ports and data), run ruff, mypy and pytest, stop it. Extra args go to pytest."""
    config = test_config()
    began = time.monotonic()
    os.environ.update(TEST_API_KEYS)
    stack.down(config, say=lambda _: None)  # leftovers of an interrupted run
    try:
        info = _up(config)
        _say(f"test stack ready in {time.monotonic() - began:.1f}s (kafka {info.timings['kafka']:.1f}s)")
        env = {
            **os.environ,
            "SPLITSTREAM_KAFKA_BOOTSTRAP_SERVERS": config.kafka_bootstrap,
            "SPLITSTREAM_REDIS_URL": info.redis_url,
            "SPLITSTREAM_TEST_ASSIGNMENT_URL": config.service_url("assignment"),
            "SPLITSTREAM_TEST_COLLECTOR_URL": config.service_url("collector"),
            "SPLITSTREAM_TEST_ANALYZER_URL": config.service_url("analyzer"),
            "SPLITSTREAM_TEST_EVENTS_TOPIC": config.topic,
        }
        python = sys.executable
        ruff = _run_step("ruff", [python, "-m", "ruff", "check", "."], env)
        mypy = _run_step("mypy", [python, "-m", "mypy"], env)
        pytest = _run_step("pytest", [python, "-m", "pytest", *context.args], env)
    finally:
        stack.down(config, say=_say)
    _say(f"\nmake test took {time.monotonic() - began:.1f}s: ruff {ruff}, mypy {mypy}, pytest {pytest}")
    # pytest's status decides, but a lint or type failure must not pass silently either.
    raise typer.Exit(pytest if pytest != 0 else int(ruff != 0 or mypy != 0))


@app.command()
def topics(
    partitions: Annotated[int, typer.Option(envvar="SPLITSTREAM_PARTITIONS", min=1)] = 4,
) -> None:
    """Create the events topic and its dead-letter topic on the broker the SPLITSTREAM_* settings name (used by
    docker-compose)."""
    settings = CommonSettings()

    async def create() -> dict[str, bool]:
        bootstrap = settings.kafka_bootstrap_servers
        created = await ensure_topics(bootstrap, [settings.events_topic], partitions, EVENTS_TOPIC_CONFIGS)
        return created | await ensure_topics(bootstrap, [settings.dead_letter_topic], partitions)

    for topic, new in asyncio.run(create()).items():
        _say(f"topic {topic}: {'created' if new else 'exists'}")


# The client commands, listed after the stack's own.
app.add_typer(cli_commands.experiments_app, name="experiments")
app.command("results")(cli_commands.results_command)
app.command("power")(cli_commands.power_command)
app.command("rebuild")(rebuild_command)


def _dev_stack_keys() -> dict[str, str]:
    """The keys `make up` generated. Only read: a generated key would match no running service."""
    return api_keys.read_keys_file(api_keys.keys_file(dev_config()))


def client_setup() -> cli_commands.CliSetup:
    """The client commands aim at the dev stack and use its keys when SPLITSTREAM_*_KEY are unset."""
    dev = dev_config()
    return cli_commands.CliSetup(
        fallback_keys=_dev_stack_keys, assignment_url=dev.service_url("assignment"),
        analyzer_url=dev.service_url("analyzer"),
    )


def main() -> None:
    app(obj=client_setup())
