from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from devstack import cli as devstack_cli
from services.analyzer import schemas as wire
from services.analyzer.calculator.schemas import PowerRequest, PowerResponse
from services.assignment.audit import Action, entry_for
from splitstream.auth import Caller, Scope
from splitstream.cli.commands import CliSetup, app
from splitstream.errors import FieldError, InvalidRequest, NotFound
from splitstream.experiment import Experiment, ExperimentStatus, Metric, MetricRole, MetricType, Variant

ASSIGNMENT = "http://assignment.test"
ANALYZER = "http://analyzer.test"
CREATED = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
KEY = "checkout-title"

# The treatment's relative effect on each metric: (effect, ci_lower, ci_upper, p_value). Which way is good comes
# from the definition below: refunds and latency are lower-is-better.
EFFECTS = {
    "conversion": (0.12, 0.021, 0.219, 0.017),  # up, higher is better: significant improvement
    "revenue": (-0.05, -0.09, -0.01, 0.014),  # down, higher is better: significant harm
    "refunds": (-0.08, -0.15, -0.01, 0.025),  # down, lower is better: significant improvement
    "latency": (0.10, 0.01, 0.19, 0.03),  # up, lower is better: significant harm
    "pages": (0.004, -0.02, 0.028, 0.74),  # interval across zero: nothing significant
}
METRICS = [
    Metric(key="conversion", type=MetricType.BINOMIAL, event="purchase", role=MetricRole.GOAL),
    Metric(key="revenue", type=MetricType.MEAN, event="purchase"),
    Metric(key="refunds", type=MetricType.MEAN, event="refund", role=MetricRole.GUARDRAIL, higher_is_better=False,
           margin=0.02),
    Metric(key="latency", type=MetricType.MEAN, event="page_load", role=MetricRole.GUARDRAIL, higher_is_better=False),
    Metric(key="pages", type=MetricType.MEAN, event="page_view"),
]


def experiment(key: str = KEY, **fields: Any) -> Experiment:
    values: dict[str, Any] = {
        "key": key, "salt": key, "created_at": CREATED, "kind": "content", "coverage": 0.5, "metrics": METRICS,
        "variants": [Variant(key="control", weight=0.5, payload={"title": "Checkout"}),
                     Variant(key="new_title", weight=0.5, payload={"title": "Pay in one tap"})],
        **fields,
    }
    return Experiment.model_validate(values)


def running() -> Experiment:
    return experiment(status=ExperimentStatus.RUNNING, version=2, started_at=CREATED + timedelta(hours=1))


def history() -> list[dict[str, Any]]:
    caller = Caller(scope=Scope.ADMIN, key_id="9f3a61c2")
    created = entry_for(None, experiment(), action=Action.CREATE, caller=caller, at=CREATED)
    started = entry_for(experiment(), running(), action=Action.START, caller=caller, at=CREATED + timedelta(hours=1))
    return [created.model_dump(mode="json"), started.model_dump(mode="json")]


def effect(value: float, lower: float, upper: float, p_value: float) -> dict[str, Any]:
    return {"effect": value, "ci_lower": lower, "ci_upper": upper, "p_value": p_value, "std_error": 0.05,
            "statistic": 2.4, "dof": 9998.0, "method": "welch_t", "status": "ok", "reason": None}


def metric_results(metric: Metric, users: tuple[int, int] = (5000, 5012)) -> wire.MetricResultsOut:
    value, lower, upper, p_value = EFFECTS[metric.key]
    control_mean = 0.1 if metric.type is MetricType.BINOMIAL else 20.0
    comparison = wire.ComparisonOut(
        variant="new_title", baseline="control", adjusted_p_value=min(1.0, p_value * 4),
        relative=wire.EffectOut(**effect(value, lower, upper, p_value)),
        absolute=wire.EffectOut(**effect(value * control_mean, lower * control_mean, upper * control_mean, p_value)),
        **effect(value, lower, upper, p_value),
    )
    variants = [
        wire.MetricVariantOut(key=key, n=n, sum=n * mean, mean=mean, variance=1.0)
        for key, n, mean in (("control", users[0], control_mean), ("new_title", users[1], control_mean * (1 + value)))
    ]
    return wire.MetricResultsOut(key=metric.key, type=metric.type, event=metric.event, role=metric.role,
                            variants=variants, comparisons=[comparison])


SRM_OK = wire.SrmOut(p_value=0.91, statistic=0.0144, dof=1, status="ok", reason=None)
VERDICT_REASON = "guardrail latency: +10.00% [+1.00%, +19.00%] is harmed beyond its 0.00% margin"


def split(users: tuple[int, int]) -> list[wire.VariantOut]:
    pairs = zip(("control", "new_title"), users, strict=True)
    return [wire.VariantOut(key=key, users=n, weight=0.5) for key, n in pairs]


def results() -> dict[str, Any]:
    return wire.ExperimentResults(
        experiment=KEY, status=ExperimentStatus.RUNNING, phase=1, alpha=0.05, method="frequentist",
        correction="holm", srm=SRM_OK, variants=split((5000, 5012)), metrics=[metric_results(m) for m in METRICS],
        decisions=[wire.DecisionOut(variant="new_title", verdict="roll_back", reasons=[VERDICT_REASON])],
    ).model_dump(mode="json")


def segment_results() -> dict[str, Any]:
    segments = [
        wire.SegmentOut(value=value, srm=SRM_OK, metrics=[metric_results(METRICS[0], users)], variants=split(users))
        for value, users in (("mini_program", (3100, 3087)), ("web", (1900, 1925)))
    ]
    return wire.SegmentResults(experiment=KEY, phase=1, dimension="channel", alpha=0.05, method="bayesian",
                               correction="holm", segments=segments).model_dump(mode="json")


Answer = dict[str, Any] | Callable[[httpx.Request], httpx.Response]


class FakeServices:
    """The assignment service and the analyzer behind one MockTransport; unknown routes are 404s."""

    def __init__(self, routes: dict[tuple[str, str], Answer]) -> None:
        self.routes = routes
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.routes.get((request.method, f"{request.url.scheme}://{request.url.host}{request.url.path}"))
        if answer is None:
            return httpx.Response(404, json=NotFound(f"no such route: {request.url.path}").body())
        return answer(request) if callable(answer) else httpx.Response(200, json=answer)

    def setup(self, **fields: Any) -> CliSetup:
        return CliSetup(assignment_url=ASSIGNMENT, analyzer_url=ANALYZER, transport=httpx.MockTransport(self),
                        **fields)

    def calls(self) -> list[tuple[str, str, str | None]]:
        return [(r.method, str(r.url), r.headers.get("Authorization")) for r in self.requests]


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both keys set (tests of missing keys unset them), no URL or colour settings from the caller's shell."""
    for variable in ("SPLITSTREAM_ASSIGNMENT_URL", "SPLITSTREAM_ANALYZER_URL", "FORCE_COLOR", "NO_COLOR"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("SPLITSTREAM_ADMIN_KEY", "admin-key")
    monkeypatch.setenv("SPLITSTREAM_READ_KEY", "read-key")


def run(services: FakeServices, *args: str, setup: CliSetup | None = None) -> Result:
    return CliRunner().invoke(app, list(args), obj=setup or services.setup())


READ = "Bearer read-key"
ADMIN = "Bearer admin-key"
EXPERIMENT_URL = f"{ASSIGNMENT}/v1/experiments/{KEY}"
RESULTS_URL = f"{ANALYZER}/v1/experiments/{KEY}/results"
DEFINITION_ROUTE: dict[tuple[str, str], Answer] = {("GET", EXPERIMENT_URL): running().model_dump(mode="json")}


def test_list_shows_every_experiment_with_its_variants() -> None:
    shipped = experiment("price-test", status=ExperimentStatus.SHIPPED, shipped_variant="new_title", version=5,
                         kind="pricing", coverage=1.0,
                         variants=[Variant(key="control", weight=0.8), Variant(key="new_title", weight=0.2)])
    services = FakeServices({("GET", f"{ASSIGNMENT}/v1/experiments"): {"experiments": [
        running().model_dump(mode="json"), shipped.model_dump(mode="json")]}})
    result = run(services, "experiments", "list")
    assert result.exit_code == 0, result.output
    assert services.calls() == [("GET", f"{ASSIGNMENT}/v1/experiments", READ)]
    lines = result.output.splitlines()
    checkout = next(line for line in lines if KEY in line)
    assert re.search(r"checkout-title\s*│ running\s*│\s*1 │\s*2 │ content\s*│ control 50%, new_title 50%\s*│\s*50%",
                     checkout), checkout
    price = next(line for line in lines if "price-test" in line)
    assert "shipped (new_title)" in price and "control 80%, new_title 20%" in price and "pricing" in price


def test_show_prints_the_definition_and_its_history() -> None:
    services = FakeServices({
        ("GET", EXPERIMENT_URL): running().model_dump(mode="json"),
        ("GET", f"{EXPERIMENT_URL}/history"): {"experiment": KEY, "entries": history()},
    })
    result = run(services, "experiments", "show", KEY)
    assert result.exit_code == 0, result.output
    assert services.calls() == [("GET", EXPERIMENT_URL, READ), ("GET", f"{EXPERIMENT_URL}/history", READ)]
    assert '"payload": {\n        "title": "Pay in one tap"\n      }' in result.output
    create_row = next(line for line in result.output.splitlines() if "│ create" in line)
    assert "2026-03-02 09:30:00 UTC" in create_row and "admin (9f3a61c2)" in create_row
    start_row = next(line for line in result.output.splitlines() if "│ start" in line)
    assert "status: draft → running" in start_row and "started_at" in start_row
    assert "version: " not in start_row  # bookkeeping fields are not changes


@pytest.mark.parametrize("start", [False, True])
def test_create_posts_the_file_with_the_admin_key(tmp_path: Path, start: bool) -> None:
    definition = {"key": KEY, "variants": [{"key": "control"}, {"key": "new_title"}],
                  "metrics": [{"key": "conversion", "type": "binomial", "event": "purchase"}]}
    path = tmp_path / "def.json"
    path.write_text(json.dumps(definition))
    services = FakeServices({
        ("POST", f"{ASSIGNMENT}/v1/experiments"): lambda request: httpx.Response(
            201, json=experiment(**json.loads(request.content)).model_dump(mode="json")),
        ("POST", f"{EXPERIMENT_URL}/start"): running().model_dump(mode="json"),
    })
    result = run(services, "experiments", "create", "-f", str(path), *(["--start"] if start else []))
    assert result.exit_code == 0, result.output
    assert json.loads(services.requests[0].content) == definition
    expected = [("POST", f"{ASSIGNMENT}/v1/experiments", ADMIN)] + ([("POST", f"{EXPERIMENT_URL}/start", ADMIN)]
                                                                     if start else [])
    assert services.calls() == expected
    assert "created checkout-title: version 1, draft" in result.output
    assert ("started checkout-title: version 2, running" in result.output) is start


def test_a_rejected_definition_prints_the_fields_and_exits_non_zero(tmp_path: Path) -> None:
    path = tmp_path / "def.json"
    path.write_text(json.dumps({"key": KEY, "variants": [{"key": "a", "weight": 0.7}, {"key": "b", "weight": 0.7}],
                                "coverage": 2}))
    body = InvalidRequest("request validation failed", [
        FieldError("body.variants", "Value error, weights must sum to 1 (within 1e-09); they sum to 1.4"),
        FieldError("body.coverage", "Input should be less than or equal to 1"),
    ]).body()
    services = FakeServices({("POST", f"{ASSIGNMENT}/v1/experiments"): lambda _: httpx.Response(422, json=body)})
    result = run(services, "experiments", "create", "-f", str(path), "--start")
    assert result.exit_code == 1
    assert "request validation failed" in result.stderr and "HTTP 422 invalid_request" in result.stderr
    assert "body.variants: Value error, weights must sum to 1" in result.stderr
    assert "body.coverage: Input should be less than or equal to 1" in result.stderr
    assert len(services.requests) == 1  # --start is not tried after a failed create


def test_a_file_that_is_not_json_sends_nothing(tmp_path: Path) -> None:
    path = tmp_path / "def.json"
    path.write_text("{key: checkout-title")
    services = FakeServices({})
    result = run(services, "experiments", "create", "-f", str(path))
    assert result.exit_code == 1
    assert "is not JSON" in result.stderr
    assert services.requests == []


@pytest.mark.parametrize(("verb", "status"), [("start", "running"), ("pause", "paused"), ("stop", "stopped")])
def test_lifecycle_commands_post_their_action(verb: str, status: str) -> None:
    moved = experiment(status=status, version=3, started_at=CREATED).model_dump(mode="json")
    services = FakeServices({("POST", f"{EXPERIMENT_URL}/{verb}"): moved})
    result = run(services, "experiments", verb, KEY)
    assert result.exit_code == 0, result.output
    assert services.calls() == [("POST", f"{EXPERIMENT_URL}/{verb}", ADMIN)]
    assert f"checkout-title: version 3, {status}" in result.output


def test_ship_sends_the_winner() -> None:
    shipped = experiment(status=ExperimentStatus.SHIPPED, shipped_variant="new_title", version=4, started_at=CREATED)
    services = FakeServices({("POST", f"{EXPERIMENT_URL}/ship"): shipped.model_dump(mode="json")})
    result = run(services, "experiments", "ship", KEY, "new_title")
    assert result.exit_code == 0, result.output
    assert services.calls() == [("POST", f"{EXPERIMENT_URL}/ship", ADMIN)]
    assert json.loads(services.requests[0].content) == {"variant": "new_title"}
    assert "shipped new_title of checkout-title: version 4, shipped" in result.output


SGR_BEFORE = r"\x1b\[([0-9;]*)m"


def style_of(output: str, text: str) -> str | None:
    """The SGR parameters that open right before ``text`` and the cell's padding (None when it is unstyled)."""
    assert text in output, f"{text!r} not in the output"
    match = re.search(SGR_BEFORE + r" *" + re.escape(text), output)
    return match.group(1) if match else None


def test_results_colour_lifts_by_the_direction_the_definition_calls_good(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("TERM", "xterm")
    services = FakeServices({("GET", RESULTS_URL): results(), **DEFINITION_ROUTE})
    result = run(services, "results", KEY)
    assert result.exit_code == 0, result.output
    assert services.calls() == [("GET", f"{RESULTS_URL}?difference=relative", READ), ("GET", EXPERIMENT_URL, READ)]
    green, red = "32", "31"
    assert style_of(result.output, "+12.00%") == green  # conversion up
    assert style_of(result.output, "[+2.10%, +21.90%]") == green
    assert style_of(result.output, "-5.00%") == red  # revenue down
    assert style_of(result.output, "-8.00%") == green  # refunds down, lower is better
    assert style_of(result.output, "+10.00%") == red  # latency up, lower is better
    assert style_of(result.output, "+0.40%") is None  # pages: interval across zero


def test_results_without_the_definition_assume_higher_is_better(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("TERM", "xterm")
    services = FakeServices({("GET", RESULTS_URL): results()})  # the definition's route answers 404
    result = run(services, "results", KEY)
    assert result.exit_code == 0, result.output
    assert "colours assume higher is better" in result.stderr
    assert style_of(result.stdout, "-8.00%") == "31"  # refunds down now reads as a harm


def test_results_print_every_column_and_the_calls() -> None:
    services = FakeServices({("GET", RESULTS_URL): results(), **DEFINITION_ROUTE})
    result = run(services, "results", KEY)
    assert result.exit_code == 0, result.output
    output = result.output
    assert "Experiment checkout-title — status running, phase 1, method frequentist, alpha 0.05" in output
    assert "Sample-ratio check: ok (p = 0.91)" in output
    header = r"variant\s*┃\s*users\s*┃\s*mean\s*┃\s*lift vs control\s*┃\s*95% CI\s*┃\s*p-value\s*┃\s*adjusted p"
    assert len(re.findall(header, output)) == len(METRICS)
    conversion_row = next(line for line in output.splitlines() if "new_title" in line and "+12.00%" in line)
    cells = [cell.strip() for cell in conversion_row.strip("│ ").split("│")]
    assert cells == ["new_title", "5012", "11.20%", "+12.00%", "[+2.10%, +21.90%]", "0.017", "0.068"]
    assert "refunds (mean, guardrail, lower is better)" in output
    assert f"Call for new_title: roll back — {VERDICT_REASON}" in output


def test_results_by_segment_send_the_query_and_print_a_table_per_value() -> None:
    services = FakeServices({("GET", RESULTS_URL): segment_results(), **DEFINITION_ROUTE})
    result = run(services, "results", KEY, "--segment", "channel", "--method", "bayesian")
    assert result.exit_code == 0, result.output
    assert dict(services.requests[0].url.params) == {"segment": "channel", "method": "bayesian",
                                                     "difference": "relative"}
    assert "channel = mini_program (sample ratio: ok)" in result.output
    assert "channel = web (sample ratio: ok)" in result.output
    rows = [line for line in result.output.splitlines() if "new_title" in line]
    assert [re.search(r"│\s*(\d+)\s*│", row).group(1) for row in rows] == ["3087", "1925"]  # type: ignore[union-attr]


def test_power_prints_users_per_variant_and_days() -> None:
    def calculator(request: httpx.Request) -> httpx.Response:
        body = PowerRequest.model_validate_json(request.content)
        assert (body.baseline_rate, body.relative_mde, body.variants, body.daily_users) == (0.1, 0.05, 3, 9000)
        assert (body.alpha, body.power) == (0.01, 0.9)
        return httpx.Response(200, json=PowerResponse(users_per_variant=14_751, days=5).model_dump(exclude_none=True))

    services = FakeServices({("POST", f"{ANALYZER}/v1/stats/power"): calculator})
    result = run(services, "power", "--baseline-rate", "0.1", "--mde", "0.05", "--variants", "3",
                 "--daily-users", "9000", "--alpha", "0.01", "--power", "0.9")
    assert result.exit_code == 0, result.output
    assert services.requests[0].headers["Authorization"] == READ
    assert "14,751 users per variant (44,253 in all over 3 variants)" in result.output
    assert "5 days at 9,000 new users a day" in result.output


BOTH_KEYS = ("SPLITSTREAM_ADMIN_KEY", "SPLITSTREAM_READ_KEY")


@pytest.mark.parametrize(
    ("args", "unset", "named"),
    [(["experiments", "list"], BOTH_KEYS, "SPLITSTREAM_READ_KEY"),
     (["experiments", "stop", KEY], BOTH_KEYS, "SPLITSTREAM_ADMIN_KEY"),
     (["experiments", "ship", KEY, "new_title"], ("SPLITSTREAM_ADMIN_KEY",), "SPLITSTREAM_ADMIN_KEY"),
     (["power", "--baseline-rate", "0.1", "--mde", "0.05"], BOTH_KEYS, "SPLITSTREAM_READ_KEY")],
)
def test_a_missing_key_exits_non_zero_with_a_message(
    args: list[str], unset: tuple[str, ...], named: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in unset:
        monkeypatch.delenv(variable)
    services = FakeServices({})
    result = run(services, *args)
    assert result.exit_code == 1
    assert f"needs the {'admin' if 'ADMIN' in named else 'read'} API key: set {named}" in result.stderr
    assert services.requests == []


def test_keys_missing_from_the_environment_come_from_the_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPLITSTREAM_ADMIN_KEY", "admin-from-env")
    monkeypatch.delenv("SPLITSTREAM_READ_KEY")
    stored = {"SPLITSTREAM_ADMIN_KEY": "admin-from-file", "SPLITSTREAM_READ_KEY": "read-from-file"}
    services = FakeServices({("GET", f"{ASSIGNMENT}/v1/experiments"): {"experiments": []},
                             ("POST", f"{EXPERIMENT_URL}/start"): running().model_dump(mode="json")})
    setup = services.setup(fallback_keys=lambda: stored)
    assert run(services, "experiments", "list", setup=setup).exit_code == 0
    assert run(services, "experiments", "start", KEY, setup=setup).exit_code == 0
    assert [call[2] for call in services.calls()] == ["Bearer read-from-file", "Bearer admin-from-env"]


def test_root_options_and_their_variables_choose_the_services(monkeypatch: pytest.MonkeyPatch) -> None:
    services = FakeServices({("GET", "http://elsewhere.test/v1/experiments"): {"experiments": []},
                             ("GET", "http://from-env.test/v1/experiments"): {"experiments": []}})
    flag = run(services, "--assignment-url", "http://elsewhere.test/", "experiments", "list")
    monkeypatch.setenv("SPLITSTREAM_ASSIGNMENT_URL", "http://from-env.test")
    env = run(services, "experiments", "list")
    assert (flag.exit_code, env.exit_code) == (0, 0)
    assert [str(r.url) for r in services.requests] == ["http://elsewhere.test/v1/experiments",
                                                       "http://from-env.test/v1/experiments"]
    assert "No experiments yet." in env.output


def test_an_unreachable_service_exits_non_zero() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    result = CliRunner().invoke(app, ["experiments", "list"], obj=CliSetup(
        assignment_url=ASSIGNMENT, transport=httpx.MockTransport(refuse)))
    assert result.exit_code == 1
    assert f"cannot reach {ASSIGNMENT}/v1/experiments" in result.stderr


def test_the_splitstream_entry_point_aims_at_the_dev_stack_with_its_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in BOTH_KEYS:
        monkeypatch.delenv(variable)
    monkeypatch.setenv("SPLITSTREAM_RUN_DIR", str(tmp_path))
    monkeypatch.setenv("SPLITSTREAM_ANALYZER_PORT", "18003")
    (tmp_path / "api-keys.env").write_text("# keys\nSPLITSTREAM_ADMIN_KEY=ss_admin_x\nSPLITSTREAM_READ_KEY=ss_read_y\n")
    setup = devstack_cli.client_setup()
    assert (setup.assignment_url, setup.analyzer_url) == ("http://127.0.0.1:8001", "http://127.0.0.1:18003")
    services = FakeServices({("GET", f"{ASSIGNMENT}/v1/experiments"): {"experiments": []},
                             ("GET", f"{ANALYZER}/v1/experiments/k/results"): results()})
    transport = CliSetup(fallback_keys=setup.fallback_keys, transport=httpx.MockTransport(services),
                         assignment_url=ASSIGNMENT, analyzer_url=ANALYZER)
    listed = CliRunner().invoke(devstack_cli.app, ["experiments", "list"], obj=transport)
    monkeypatch.setenv("SPLITSTREAM_READ_KEY", "read-from-env")
    read = CliRunner().invoke(devstack_cli.app, ["results", "k"], obj=transport)
    assert (listed.exit_code, read.exit_code) == (0, 0), listed.output + read.output
    assert [call[2] for call in services.calls()[:2]] == ["Bearer ss_read_y", "Bearer read-from-env"]


def test_without_a_dev_key_file_the_entry_point_asks_for_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in BOTH_KEYS:
        monkeypatch.delenv(variable)
    monkeypatch.setenv("SPLITSTREAM_RUN_DIR", str(tmp_path))
    result = CliRunner().invoke(devstack_cli.app, ["experiments", "pause", KEY], obj=devstack_cli.client_setup())
    assert result.exit_code == 1
    assert "SPLITSTREAM_ADMIN_KEY" in result.stderr
    assert not (tmp_path / "api-keys.env").exists()  # reading the keys never creates them


def test_a_cuped_metric_says_so_with_the_smallest_variance_reduction_in_its_title() -> None:
    answer = results()
    revenue = answer["metrics"][1]
    revenue["cuped"] = True
    revenue["comparisons"][0]["variance_reduction"] = 0.374
    services = FakeServices({("GET", RESULTS_URL): answer, **DEFINITION_ROUTE})
    result = run(services, "results", KEY)
    assert result.exit_code == 0, result.output
    assert f"{revenue['key']} ({revenue['type']}, {revenue['role']}, CUPED, variance −37%)" in result.output


def test_the_campaign_against_the_holdout_gets_its_own_table_with_its_split_check() -> None:
    answer = results()
    against = metric_results(METRICS[0])
    against.variants[0].key = "(holdout)"
    answer["holdout"] = {
        "holdouts": ["push-q4"], "expected_share": 0.1, "users": 1234,
        "srm": SRM_OK.model_dump(mode="json"), "metrics": [against.model_dump(mode="json")],
    }
    services = FakeServices({("GET", RESULTS_URL): answer, **DEFINITION_ROUTE})
    result = run(services, "results", KEY)
    assert result.exit_code == 0, result.output
    assert "Against the holdout (push-q4): 1,234 held-out users, 10.0% expected" in result.output
    holdout_part = result.output.split("Against the holdout")[1]
    assert "(holdout)" in holdout_part and "Sample-ratio check: ok (p = 0.91)" in holdout_part
