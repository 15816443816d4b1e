from datetime import UTC, datetime

from services.assignment.audit import Action, Change, changes_between, entry_for
from splitstream.auth import Caller, Scope
from splitstream.experiment import Experiment

NOW = datetime(2026, 3, 1, tzinfo=UTC)
ADMIN = Caller(scope=Scope.ADMIN, key_id="ab12cd34")


def _experiment(**fields: object) -> Experiment:
    return Experiment.model_validate(
        {"key": "e", "salt": "e", "created_at": NOW, "variants": [{"key": "a"}, {"key": "b"}], **fields}
    )


def test_a_creation_lists_every_field_with_nothing_before() -> None:
    changes = changes_between(None, _experiment())
    assert changes["key"] == Change(before=None, after="e")
    assert changes["coverage"] == Change(before=None, after=1.0)
    assert "version" not in changes and "updated_at" not in changes


def test_an_update_lists_only_what_changed() -> None:
    before = _experiment()
    after = _experiment(coverage=0.2, status="running", version=2, updated_at=NOW)
    assert changes_between(before, after) == {
        "coverage": Change(before=1.0, after=0.2), "status": Change(before="draft", after="running"),
    }


def test_an_entry_records_who_when_what_and_the_version() -> None:
    after = _experiment(version=3, coverage=0.5)
    entry = entry_for(_experiment(version=2), after, action=Action.UPDATE, caller=ADMIN, at=NOW)
    assert (entry.experiment, entry.version, entry.at, entry.action) == ("e", 3, NOW, Action.UPDATE)
    assert (entry.actor.scope, entry.actor.key_id) == (Scope.ADMIN, "ab12cd34")
    assert set(entry.changes) == {"coverage"}
