import base64

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


def _basic(credentials: bytes) -> str:
    return "Basic " + base64.b64encode(credentials).decode()


def test_basic_auth_takes_the_key_as_password_with_any_user_name_and_the_same_scopes() -> None:
    keys = ApiKeys({Scope.ADMIN: "a", Scope.INGEST: "i", Scope.READ: "r"})
    assert granted_scopes(keys, "Basic dXNlcjpy", None) == {Scope.READ}  # base64("user:r"), written out by hand
    assert granted_scopes(keys, _basic(b":a"), None) == frozenset(Scope)  # an empty user name is fine
    assert granted_scopes(keys, "basic  " + base64.b64encode(b"x:i").decode() + " ", None) == {Scope.INGEST}
    assert granted_scopes(keys, _basic("李雷:r".encode()), None) == {Scope.READ}
    assert granted_scopes(keys, _basic(b"r:nope"), None) == frozenset()  # the user name is never the key
    assert granted_scopes(keys, _basic(b"me:a"), "i") == frozenset(Scope)  # the header wins over the query


def test_basic_auth_keeps_everything_after_the_first_colon_as_the_password() -> None:
    keys = ApiKeys({Scope.ADMIN: "a", Scope.INGEST: "i", Scope.READ: "key:with:colons"})
    assert granted_scopes(keys, _basic(b"user:key:with:colons"), None) == {Scope.READ}


@pytest.mark.parametrize("credentials", [
    "Basic " + base64.b64encode(b"user:").decode(),  # no password
    "Basic " + base64.b64encode(b"r").decode(),  # no colon: not user:password
    "Basic " + base64.b64encode(b"u:\xff\xfe").decode(),  # not UTF-8
    "Basic not*base64",
    "Basic ",
])
def test_malformed_basic_credentials_are_unauthorized(credentials: str) -> None:
    keys = ApiKeys({Scope.ADMIN: "a", Scope.INGEST: "i", Scope.READ: "r"})
    with pytest.raises(Unauthorized, match="missing API key"):
        granted_scopes(keys, credentials, None)
    with pytest.raises(Unauthorized):  # nor does a malformed header fall back to a query key
        granted_scopes(keys, credentials, "i")
