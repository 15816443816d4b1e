import pytest
from pydantic import SecretStr

from splitstream.auth import ApiKeys, Scope
from splitstream.settings import CommonSettings


def _keys() -> ApiKeys:
    settings = CommonSettings(admin_key=SecretStr("a"), ingest_key=SecretStr("i"), read_key=SecretStr("r"))
    return ApiKeys.from_settings(settings)


def test_admin_holds_every_scope_and_the_others_only_their_own() -> None:
    keys = _keys()
    assert keys.scopes_of("a") == frozenset(Scope)
    assert keys.scopes_of("i") == {Scope.INGEST}
    assert keys.scopes_of("r") == {Scope.READ}
    assert keys.scopes_of("nope") == frozenset()


def test_missing_keys_are_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPLITSTREAM_READ_KEY", raising=False)
    with pytest.raises(ValueError, match="read"):
        ApiKeys.from_settings(CommonSettings(admin_key=SecretStr("a"), ingest_key=SecretStr("i")))
