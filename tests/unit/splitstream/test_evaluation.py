"""The shared evaluation: each rule of splitstream/evaluation.py's docstring, in its order."""

from __future__ import annotations

import copy
import itertools
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from splitstream.evaluation import Catalog, CatalogDocument, Decision, Reason, exposure_event_id, sticky_field
from splitstream.experiment import HOLDOUT_ARM, Experiment
from splitstream.hashing import bucket, variant_index
from splitstream.layers import Holdout, HoldoutScope, Layer

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PAYLOADS = {"control": {"title": "Buy now"}, "treatment": {"title": "Get yours today"}}


def _experiment(key: str = "title-test", **fields: Any) -> Experiment:
    return Experiment.model_validate(
        {
            "key": key,
            "variants": [
                {"key": "control", "weight": 0.5, "payload": PAYLOADS["control"]},
                {"key": "treatment", "weight": 0.5, "payload": PAYLOADS["treatment"]},
            ],
            "salt": f"salt-{key}",
            "created_at": "2026-01-01T00:00:00Z",
            "status": "running",
        }
        | fields
    )


def _user(predicate: Callable[[str], bool]) -> str:
    """The first ``user-{i}`` meeting the predicate (found by the hash, so tests need no magic ids)."""
    return next(user for user in (f"user-{i}" for i in itertools.count()) if predicate(user))


def _hashed_variant(experiment: Experiment, unit: str, coverage: float = 1.0) -> str | None:
    index = variant_index(experiment.weights, coverage, bucket(experiment.salt, unit))
    return None if index is None else experiment.variants[index].key


def _decide(
    experiment: Experiment,
    user: str = "user-1",
    attributes: dict[str, Any] | None = None,
    *,
    sticky: str | None = None,
    holdouts: Iterable[Holdout] = (),
    layers: Iterable[Layer] = (),
    now: datetime = NOW,
) -> Decision:
    catalog = Catalog.of([experiment], layers=layers, holdouts=holdouts)
    return catalog.evaluate(experiment.key, user, attributes or {}, now, sticky)


def _assert_control(decision: Decision, reason: Reason) -> None:
    assert (decision.reason, decision.variant, decision.payload) == (reason, "control", PAYLOADS["control"])
    assert not decision.in_experiment


# --- 1. stopped ----------------------------------------------------------------------------------------------------
def test_a_stopped_experiment_shows_everyone_the_control() -> None:
    experiment = _experiment(status="stopped", forced={"qa-1": "treatment"})
    treated = _user(lambda user: _hashed_variant(experiment, user) == "treatment")
    _assert_control(_decide(experiment, treated), Reason.NOT_RUNNING)
    # before the forced list, the unit check and the sticky variant
    _assert_control(_decide(experiment, "qa-1"), Reason.NOT_RUNNING)
    _assert_control(_decide(experiment, treated, sticky="treatment"), Reason.NOT_RUNNING)
    _assert_control(_decide(experiment.model_copy(update={"unit": "device_id"}), treated), Reason.NOT_RUNNING)


# --- 2. the unit ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("attributes", [{}, {"device_id": None}, {"device_id": ""}, {"user_id": "d-1"}])
def test_a_missing_unit_attribute_shows_the_control(attributes: dict[str, Any]) -> None:
    experiment = _experiment(unit="device_id", forced={"user-1": "treatment"})
    decision = _decide(experiment, "user-1", attributes)
    _assert_control(decision, Reason.MISSING_UNIT)
    assert decision.unit_id is None


def test_the_unit_attribute_is_what_gets_hashed() -> None:
    experiment = _experiment(unit="device_id")
    device = _user(lambda unit: _hashed_variant(experiment, unit) == "treatment")
    decisions = [_decide(experiment, user, {"device_id": device}) for user in ("user-1", "user-2", "someone-else")]
    assert {(d.reason, d.variant, d.unit_id) for d in decisions} == {(Reason.HASHED, "treatment", device)}


# --- 3. forced -----------------------------------------------------------------------------------------------------
def test_forced_beats_targeting_holdout_layer_and_coverage() -> None:
    holdout = Holdout(key="everyone", share=0.5, scope=HoldoutScope.GLOBAL)
    qa = _user(lambda user: holdout.holds(user) and _hashed_variant(_experiment(), user) == "control")
    experiment = _experiment(
        coverage=0.0,
        targeting=[{"attribute": "country", "op": "eq", "value": "SG"}],
        layer={"key": "home", "share": 0.1},
        layer_ranges=[],
        forced={qa: "treatment"},
    )
    decision = _decide(experiment, qa, {"country": "US"}, holdouts=[holdout], layers=[Layer(key="home")])
    assert (decision.reason, decision.variant, decision.payload) == (Reason.FORCED, "treatment", PAYLOADS["treatment"])
    assert not decision.in_experiment


@pytest.mark.parametrize("status", ["draft", "paused", "running", "shipped"])
def test_forced_works_in_every_status_but_stopped(status: str) -> None:
    experiment = _experiment(status=status, forced={"qa-1": "treatment"}, shipped_variant="control")
    decision = _decide(experiment, "qa-1", sticky="control")
    assert (decision.reason, decision.variant) == (Reason.FORCED, "treatment")


def test_forced_is_keyed_by_the_unit() -> None:
    experiment = _experiment(status="draft", unit="device_id", forced={"device-qa": "treatment"})
    assert _decide(experiment, "user-1", {"device_id": "device-qa"}).reason is Reason.FORCED
    _assert_control(_decide(experiment, "device-qa", {"device_id": "device-other"}), Reason.NOT_RUNNING)


# --- 4. draft and paused -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("status", ["draft", "paused"])
def test_a_draft_or_paused_experiment_shows_the_control(status: str) -> None:
    experiment = _experiment(status=status)
    treated = _user(lambda user: _hashed_variant(experiment, user) == "treatment")
    _assert_control(_decide(experiment, treated), Reason.NOT_RUNNING)
    _assert_control(_decide(experiment, treated, sticky="treatment"), Reason.NOT_RUNNING)


# --- 5. targeting --------------------------------------------------------------------------------------------------
def test_an_untargeted_user_sees_the_control() -> None:
    experiment = _experiment(targeting=[
        {"attribute": "country", "op": "in", "value": ["SG", "CN"]},
        {"attribute": "app_version", "op": "version_gte", "value": "2.0"},
    ])
    treated = _user(lambda user: _hashed_variant(experiment, user) == "treatment")
    assert _decide(experiment, treated, {"country": "SG", "app_version": "2.1"}).reason is Reason.HASHED
    _assert_control(_decide(experiment, treated, {"country": "US", "app_version": "2.1"}), Reason.NOT_TARGETED)
    _assert_control(_decide(experiment, treated, {"country": "SG"}), Reason.NOT_TARGETED)


# --- 6. holdouts ---------------------------------------------------------------------------------------------------
def test_a_global_holdout_keeps_its_units_out() -> None:
    holdout = Holdout(key="everyone", share=0.2, scope=HoldoutScope.GLOBAL)
    experiment = _experiment()
    held = _user(lambda user: bucket("everyone", user) < 2000 and _hashed_variant(experiment, user) == "treatment")
    free = _user(lambda user: bucket("everyone", user) >= 2000 and _hashed_variant(experiment, user) == "treatment")
    for sticky in (None, "treatment"):
        decision = _decide(experiment, held, holdouts=[holdout], sticky=sticky)
        assert (decision.reason, decision.variant, decision.payload) == (Reason.HOLDOUT, "control", PAYLOADS["control"])
        # Otherwise in the experiment: counted in the holdout arm, the baseline of the campaign's total effect.
        assert decision.held_out and decision.in_experiment and decision.arm == HOLDOUT_ARM
    assert _decide(experiment, free, holdouts=[holdout]).reason is Reason.HASHED


def test_a_held_out_unit_outside_the_coverage_or_the_layer_share_is_not_counted() -> None:
    """Held-out and treated units must sample the same population: only units the experiment would take count."""
    holdout = Holdout(key="everyone", share=0.5, scope=HoldoutScope.GLOBAL)
    layer = Layer(key="home")
    experiment = _experiment(coverage=0.2, layer={"key": "home", "share": 0.5}, layer_ranges=[(0, 5000)])

    def held_where(in_layer: bool, in_coverage: bool) -> str:
        return _user(lambda user: bucket("everyone", user) < 5000 and (bucket("home", user) < 5000) == in_layer
                     and (_hashed_variant(experiment, user, 0.2) is not None) == in_coverage)

    counted = _decide(experiment, held_where(True, True), holdouts=[holdout], layers=[layer])
    assert counted.reason is Reason.HOLDOUT and counted.held_out
    for user in (held_where(True, False), held_where(False, True)):
        decision = _decide(experiment, user, holdouts=[holdout], layers=[layer])
        _assert_control(decision, Reason.HOLDOUT)
        assert not decision.held_out and decision.arm == "control"


def test_a_held_out_units_exposure_counts_in_the_holdout_arm() -> None:
    holdout = Holdout(key="everyone", share=0.5, scope=HoldoutScope.GLOBAL)
    experiment = _experiment(segments=["channel"])
    held = _user(lambda user: bucket("everyone", user) < 5000)
    decision = _decide(experiment, held, {"channel": "app"}, holdouts=[holdout])

    exposure = decision.exposure(NOW, experiment.segment_attributes({"channel": "app", "country": "SG"}))

    assert (exposure.variant, exposure.experiment, exposure.user_id, exposure.attributes) == (
        HOLDOUT_ARM, experiment.key, held, {"channel": "app"},
    )
    assert exposure.event_id == exposure_event_id(experiment.key, 1, held)


def test_an_attached_holdout_applies_only_to_experiments_naming_it() -> None:
    holdout = Holdout(key="campaign-q4", share=0.5, salt="q4")
    naming = _experiment("naming", holdouts=["campaign-q4"])
    other = _experiment("other")
    held = _user(lambda user: bucket("q4", user) < 5000)
    catalog = Catalog.of([naming, other], holdouts=[holdout])
    assert catalog.evaluate("naming", held, {}, NOW).reason is Reason.HOLDOUT
    assert catalog.evaluate("other", held, {}, NOW).reason is Reason.HASHED


def test_targeting_is_checked_before_the_holdout() -> None:
    holdout = Holdout(key="everyone", share=0.5, scope=HoldoutScope.GLOBAL)
    experiment = _experiment(targeting=[{"attribute": "country", "op": "eq", "value": "SG"}])
    held = _user(lambda user: bucket("everyone", user) < 5000)
    assert _decide(experiment, held, {"country": "US"}, holdouts=[holdout]).reason is Reason.NOT_TARGETED


# --- 7. shipped ----------------------------------------------------------------------------------------------------
def test_a_shipped_experiment_shows_its_winner_to_everyone_else() -> None:
    experiment = _experiment(status="shipped", shipped_variant="treatment", coverage=0.0)
    for user in ("user-1", "user-2", "user-3"):
        decision = _decide(experiment, user, sticky="control")
        assert (decision.reason, decision.variant, decision.payload) == (
            Reason.SHIPPED, "treatment", PAYLOADS["treatment"],
        )
        assert not decision.in_experiment


def test_a_shipped_experiment_respects_targeting_and_holdouts() -> None:
    holdout = Holdout(key="campaign-q4", share=0.5)
    experiment = _experiment(
        status="shipped",
        shipped_variant="treatment",
        targeting=[{"attribute": "country", "op": "eq", "value": "SG"}],
        holdouts=["campaign-q4"],
    )
    held = _user(lambda user: bucket("campaign-q4", user) < 5000)
    free = _user(lambda user: bucket("campaign-q4", user) >= 5000)
    _assert_control(_decide(experiment, free, {"country": "US"}, holdouts=[holdout]), Reason.NOT_TARGETED)
    _assert_control(_decide(experiment, held, {"country": "SG"}, holdouts=[holdout]), Reason.HOLDOUT)
    assert _decide(experiment, free, {"country": "SG"}, holdouts=[holdout]).variant == "treatment"


def test_a_shipped_experiment_ignores_its_layer() -> None:
    experiment = _experiment(status="shipped", shipped_variant="treatment", layer={"key": "home", "share": 0.1})
    assert _decide(experiment, layers=[Layer(key="home")]).reason is Reason.SHIPPED


# --- 8. sticky -----------------------------------------------------------------------------------------------------
def test_a_sticky_variant_beats_the_weights() -> None:
    experiment = _experiment()
    in_control = _user(lambda user: _hashed_variant(experiment, user) == "control")
    decision = _decide(experiment, in_control, sticky="treatment")
    assert (decision.reason, decision.variant, decision.payload) == (Reason.STICKY, "treatment", PAYLOADS["treatment"])
    assert decision.in_experiment


def test_a_sticky_variant_beats_coverage_and_layer() -> None:
    experiment = _experiment(coverage=0.0, layer={"key": "home", "share": 0.1}, layer_ranges=[])
    decision = _decide(experiment, sticky="treatment", layers=[Layer(key="home")])
    assert (decision.reason, decision.variant) == (Reason.STICKY, "treatment")


def test_a_sticky_variant_does_not_beat_targeting() -> None:
    experiment = _experiment(targeting=[{"attribute": "country", "op": "eq", "value": "SG"}])
    _assert_control(_decide(experiment, attributes={"country": "US"}, sticky="treatment"), Reason.NOT_TARGETED)


@pytest.mark.parametrize("sticky", ["gone-variant", "", "Treatment"])
def test_a_sticky_variant_the_experiment_lacks_is_ignored(sticky: str) -> None:
    experiment = _experiment()
    in_control = _user(lambda user: _hashed_variant(experiment, user) == "control")
    decision = _decide(experiment, in_control, sticky=sticky)
    assert (decision.reason, decision.variant) == (Reason.HASHED, "control")


# --- 9. layers -----------------------------------------------------------------------------------------------------
def test_experiments_of_one_layer_never_share_a_user() -> None:
    layer = Layer(key="home", salt="home-2026")
    left = _experiment("left", layer={"key": "home", "share": 0.5}, layer_ranges=[(0, 5000)])
    right = _experiment("right", layer={"key": "home", "share": 0.5}, layer_ranges=[(5000, 10000)])
    catalog = Catalog.of([left, right], layers=[layer])
    users = 20_000
    entered: Counter[tuple[bool, bool]] = Counter()
    for i in range(users):
        left_reason, right_reason = (decision.reason for decision in catalog.evaluate_all(f"user-{i}", {}, NOW))
        assert {left_reason, right_reason} <= {Reason.HASHED, Reason.LAYER_EXCLUDED}
        entered[left_reason is Reason.HASHED, right_reason is Reason.HASHED] += 1
    assert entered[True, True] == 0
    assert entered[False, False] == 0  # the two halves cover the layer
    # Half each, within 4 standard errors (sqrt(0.25 / 20,000) ≈ 0.0035).
    assert abs(entered[True, False] / users - 0.5) < 4 * 0.0036


def test_layer_membership_is_by_the_layer_salt() -> None:
    layer = Layer(key="home", salt="home-2026")
    experiment = _experiment(layer={"key": "home", "share": 0.3}, layer_ranges=[(1000, 2000), (6000, 8000)])
    inside = _user(lambda user: 1000 <= bucket("home-2026", user) < 2000)
    outside = _user(lambda user: 2000 <= bucket("home-2026", user) < 6000)
    assert _decide(experiment, inside, layers=[layer]).reason is Reason.HASHED
    _assert_control(_decide(experiment, outside, layers=[layer]), Reason.LAYER_EXCLUDED)


def test_an_experiment_whose_layer_is_unknown_takes_nobody() -> None:
    experiment = _experiment(layer={"key": "home", "share": 1.0}, layer_ranges=[(0, 10000)])
    _assert_control(_decide(experiment), Reason.LAYER_EXCLUDED)


# --- 10. coverage and ramps ----------------------------------------------------------------------------------------
def test_units_outside_the_coverage_see_the_control() -> None:
    experiment = _experiment(coverage=0.1)
    outside = _user(lambda user: 500 <= bucket(experiment.salt, user) < 5000)  # ranges [0, 500) and [5000, 5500)
    inside = _user(lambda user: 5000 <= bucket(experiment.salt, user) < 5500)
    _assert_control(_decide(experiment, outside), Reason.NOT_IN_COVERAGE)
    assert (_decide(experiment, inside).reason, _decide(experiment, inside).variant) == (Reason.HASHED, "treatment")


def test_the_ramp_step_in_force_sets_the_coverage() -> None:
    first, second = NOW + timedelta(days=1), NOW + timedelta(days=2)
    experiment = _experiment(coverage=0.0, ramp=[{"at": first, "coverage": 0.1}, {"at": second, "coverage": 1.0}])
    users = [f"user-{i}" for i in range(2_000)]
    for now, coverage in [(NOW, 0.0), (first, 0.1), (first + timedelta(hours=1), 0.1), (second, 1.0)]:
        assert experiment.coverage_at(now) == coverage
        catalog = Catalog.of([experiment])
        decisions = [catalog.evaluate(experiment.key, user, {}, now) for user in users]
        assert [d.variant if d.reason is Reason.HASHED else None for d in decisions] == [
            _hashed_variant(experiment, user, coverage) for user in users
        ]
        assert {d.reason for d in decisions} <= {Reason.HASHED, Reason.NOT_IN_COVERAGE}


# --- 11. hashed ----------------------------------------------------------------------------------------------------
def test_the_hash_picks_the_variant_by_variant_index() -> None:
    variants = [
        {"key": "control", "weight": 0.1, "payload": "p-control"},
        {"key": "b", "weight": 0.2, "payload": "p-b"},
        {"key": "c", "weight": 0.7, "payload": "p-c"},
    ]
    experiment = _experiment(variants=variants, coverage=0.5)
    catalog = Catalog.of([experiment])
    reasons = Counter[Reason]()
    for user in (f"user-{i}" for i in range(3_000)):
        decision = catalog.evaluate(experiment.key, user, {}, NOW)
        index = variant_index([0.1, 0.2, 0.7], 0.5, bucket(experiment.salt, user))
        expected = (Reason.NOT_IN_COVERAGE, "control") if index is None else (Reason.HASHED, variants[index]["key"])
        assert (decision.reason, decision.variant) == expected
        assert decision.payload == f"p-{decision.variant}"
        assert decision.in_experiment is (decision.reason is Reason.HASHED)
        assert (decision.experiment, decision.phase, decision.unit_id) == (experiment.key, 1, user)
        reasons[decision.reason] += 1
    assert min(reasons[Reason.HASHED], reasons[Reason.NOT_IN_COVERAGE]) > 1_000


def test_an_unknown_experiment_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        Catalog.of([_experiment()]).evaluate("missing", "user-1", {}, NOW)


# --- evaluate_all and sticky fields --------------------------------------------------------------------------------
def test_evaluate_all_defaults_to_running_and_shipped_experiments() -> None:
    statuses = {"a-draft": "draft", "b-running": "running", "c-paused": "paused", "d-stopped": "stopped",
                "e-shipped": "shipped", "f-running": "running"}
    catalog = Catalog.of(_experiment(key, status=value, shipped_variant="treatment") for key, value in statuses.items())
    assert [d.experiment for d in catalog.evaluate_all("user-1", {}, NOW)] == ["b-running", "e-shipped", "f-running"]
    chosen = catalog.evaluate_all("user-1", {}, NOW, keys=["d-stopped", "a-draft"])
    assert [(d.experiment, d.reason) for d in chosen] == [
        ("d-stopped", Reason.NOT_RUNNING),
        ("a-draft", Reason.NOT_RUNNING),
    ]


def test_evaluate_all_reads_sticky_variants_of_the_current_phase_only() -> None:
    experiment = _experiment(phase=2)
    in_control = _user(lambda user: _hashed_variant(experiment, user) == "control")
    catalog = Catalog.of([experiment])
    current = catalog.evaluate_all(in_control, {}, NOW, sticky={sticky_field(experiment.key, 2): "treatment"})
    assert [(d.reason, d.variant, d.phase) for d in current] == [(Reason.STICKY, "treatment", 2)]
    earlier = catalog.evaluate_all(in_control, {}, NOW, sticky={sticky_field(experiment.key, 1): "treatment"})
    assert [(d.reason, d.variant) for d in earlier] == [(Reason.HASHED, "control")]
    other = catalog.evaluate_all(in_control, {}, NOW, sticky={sticky_field("other-test", 2): "treatment"})
    assert [(d.reason, d.variant) for d in other] == [(Reason.HASHED, "control")]


def test_sticky_fields_differ_per_experiment_and_phase() -> None:
    fields = {sticky_field(key, phase) for key in ("a", "a1", "b") for phase in (1, 2, 11)}
    assert len(fields) == 9
    assert sticky_field("a", 1) == sticky_field("a", 1)


# --- exposure ids and etags ----------------------------------------------------------------------------------------
def test_exposure_event_id_is_stable_and_distinct_per_experiment_phase_and_unit() -> None:
    assert exposure_event_id("title-test", 1, "user-1") == exposure_event_id("title-test", 1, "user-1")
    triples = [
        ("title-test", 1, "user-1"),
        ("title-test", 2, "user-1"),
        ("title-test", 1, "user-2"),
        ("price-test", 1, "user-1"),
        # would collide if the parts were simply concatenated
        ("a", 11, "x"),
        ("a", 1, "1x"),
        ("a1", 1, "x"),
    ]
    ids = [exposure_event_id(*triple) for triple in triples]
    assert len(set(ids)) == len(triples)


def _document_data() -> dict[str, Any]:
    return {
        "experiments": [
            _experiment("title-test", forced={"qa-1": "treatment", "qa-2": "control"}).model_dump(mode="json"),
            _experiment("price-test", layer={"key": "home", "share": 0.5}, layer_ranges=[[0, 5000]]).model_dump(
                mode="json"
            ),
        ],
        "layers": [{"key": "home", "salt": "home-2026"}],
        "holdouts": [{"key": "everyone", "share": 0.05, "scope": "global"}],
    }


def test_equal_documents_have_equal_etags() -> None:
    data = _document_data()
    reordered = copy.deepcopy(data)
    forced = reordered["experiments"][0]["forced"]
    reordered["experiments"][0]["forced"] = dict(reversed(list(forced.items())))  # same mapping, other order
    etags = {CatalogDocument.model_validate(d).etag() for d in (data, copy.deepcopy(data), reordered)}
    assert len(etags) == 1
    assert Catalog(CatalogDocument.model_validate(data)).etag in etags


def _reweigh(data: dict[str, Any]) -> None:
    variants = data["experiments"][0]["variants"]
    variants[0]["weight"], variants[1]["weight"] = 0.4, 0.6


CHANGES: dict[str, Callable[[dict[str, Any]], None]] = {
    "weight": _reweigh,
    "payload": lambda d: d["experiments"][0]["variants"][1].update(payload={"title": "Other"}),
    "status": lambda d: d["experiments"][0].update(status="paused"),
    "coverage": lambda d: d["experiments"][0].update(coverage=0.9),
    "forced": lambda d: d["experiments"][0]["forced"].update({"qa-3": "control"}),
    "salt": lambda d: d["experiments"][1].update(salt="new-salt"),
    "phase": lambda d: d["experiments"][1].update(phase=2),
    "layer ranges": lambda d: d["experiments"][1].update(layer_ranges=[[0, 4000]]),
    "order": lambda d: d["experiments"].reverse(),
    "layer salt": lambda d: d["layers"][0].update(salt="home-2027"),
    "holdout share": lambda d: d["holdouts"][0].update(share=0.06),
    "new holdout": lambda d: d["holdouts"].append({"key": "campaign", "share": 0.1}),
    "no experiments": lambda d: d["experiments"].clear(),
}


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
def test_any_change_changes_the_etag(change: Callable[[dict[str, Any]], None]) -> None:
    data = _document_data()
    changed = copy.deepcopy(data)
    change(changed)
    assert CatalogDocument.model_validate(changed).etag() != CatalogDocument.model_validate(data).etag()
