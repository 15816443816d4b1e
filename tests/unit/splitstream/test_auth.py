import pytest
from pydantic import SecretStr

from splitstream.auth import ApiKeys, Scope, check_scope, granted_scopes
from splitstream.errors import Forbidden, Unauthorized
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


def test_a_header_key_grants_its_scopes_and_a_query_key_ingest_at_most() -> None:
    keys = ApiKeys({Scope.ADMIN: "a", Scope.INGEST: "i", Scope.READ: "r"})
    assert granted_scopes(keys, "Bearer a", None) == frozenset(Scope)
    assert granted_scopes(keys, "bearer  r ", "a") == {Scope.READ}  # the header wins over the query
    assert granted_scopes(keys, None, "a") == {Scope.INGEST}
    assert granted_scopes(keys, None, "i") == {Scope.INGEST}
    assert granted_scopes(keys, None, "r") == frozenset()
    assert granted_scopes(keys, "Bearer nope", None) == frozenset()


@pytest.mark.parametrize(("authorization", "query_key"), [(None, None), ("Basic a", None), ("Bearer ", None),
                                                           ("Basic a", "i")])
def test_no_usable_key_is_unauthorized(authorization: str | None, query_key: str | None) -> None:
    keys = ApiKeys({Scope.ADMIN: "a", Scope.INGEST: "i", Scope.READ: "r"})
    with pytest.raises(Unauthorized, match="missing API key"):
        granted_scopes(keys, authorization, query_key)


def test_check_scope_tells_unknown_keys_from_missing_scopes() -> None:
    with pytest.raises(Unauthorized, match="unknown"):
        check_scope(frozenset(), Scope.INGEST)
    with pytest.raises(Forbidden, match="'admin'"):
        check_scope(frozenset({Scope.INGEST}), Scope.ADMIN)
    check_scope(frozenset({Scope.INGEST}), Scope.INGEST)
