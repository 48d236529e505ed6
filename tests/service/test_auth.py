"""API keys: salted hashes only, constant-time compare, revocation, roles, the verified-token cache."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradeops.deploy import auth, predlog
from tradeops.deploy.auth import KeyInfo, KeyVerifier
from tradeops.errors import UsageError


@pytest.fixture
def db(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'service.db'}"
    engine = predlog.open_database(url)
    yield engine, tmp_path / "service.db"
    engine.dispose()


@pytest.fixture
def engine(db):
    return db[0]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_create_and_verify_a_key(engine):
    key_id, token = auth.create_key(engine, role="reader", name="dashboard")
    assert token.startswith(f"to_{key_id}_") and len(token) > len(key_id) + 40
    info = KeyVerifier(engine).verify(token)
    assert info == KeyInfo(key_id=key_id, role="reader", name="dashboard")


def test_token_is_never_stored_or_logged(db, caplog, capsys):
    engine, path = db
    caplog.set_level(logging.DEBUG)
    key_id, token = auth.create_key(engine, role="operator", name="ops")
    verifier = KeyVerifier(engine)
    assert verifier.verify(token) is not None
    assert verifier.verify(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    auth.revoke_key(engine, key_id)
    listed = auth.list_keys(engine)
    engine.dispose()  # flush WAL state to disk
    secret = token.split("_", 2)[2]
    for f in path.parent.glob("service.db*"):
        raw = f.read_bytes()
        assert token.encode() not in raw and secret.encode() not in raw, f.name
    assert secret not in caplog.text and secret not in str(capsys.readouterr())
    assert set(listed[0]) == {"id", "name", "role", "created_at", "revoked_at"}
    assert secret not in repr(listed)


def test_same_token_salted_differently_hashes_differently():
    token = "to_abc_secret"
    a, b = auth.hash_token(token, b"salt-one-16bytes"), auth.hash_token(token, b"salt-two-16bytes")
    assert a != b and a.startswith("pbkdf2_sha256$") and int(a.split("$")[1]) >= 100_000


def test_two_keys_get_different_salts_and_hashes(engine):
    auth.create_key(engine, role="reader", name=None)
    auth.create_key(engine, role="reader", name=None)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(predlog.api_keys.c.salt, predlog.api_keys.c.hash)).all()
    assert len({r.salt for r in rows}) == 2 and len({r.hash for r in rows}) == 2


def test_compare_is_constant_time(engine, monkeypatch):
    calls = []
    real = auth.hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    key_id, token = auth.create_key(engine, role="reader", name=None)
    assert KeyVerifier(engine).verify(token[:-2] + "xx") is None
    assert KeyVerifier(engine).verify(token) is not None
    assert len(calls) == 2


@pytest.mark.parametrize(
    "token",
    ["", "Bearer x", "to_", "to_abc", "to__secret", "to_zz!_secret", "to_deadbeef0000_", "sk_abc_def"],
)
def test_malformed_tokens_are_refused(engine, token):
    assert KeyVerifier(engine).verify(token) is None


def test_wrong_secret_and_unknown_id_are_refused(engine):
    key_id, token = auth.create_key(engine, role="operator", name=None)
    verifier = KeyVerifier(engine)
    assert verifier.verify(f"to_{key_id}_not-the-secret") is None
    assert verifier.verify(token.replace(key_id, "000000000000")) is None
    assert verifier.verify(token) is not None


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(guess=st.text(min_size=0, max_size=80))
def test_no_guessed_token_verifies(engine, guess):
    if not auth.list_keys(engine):
        auth.create_key(engine, role="reader", name=None)
    assert KeyVerifier(engine).verify(guess) is None


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(secret=st.text(alphabet=st.characters(codec="ascii"), min_size=1, max_size=60))
def test_no_guessed_secret_for_a_real_key_id_verifies(engine, secret):
    keys = auth.list_keys(engine)
    key_id = keys[0]["id"] if keys else auth.create_key(engine, role="reader", name=None)[0]
    assert KeyVerifier(engine).verify(f"to_{key_id}_{secret}") is None


def test_revoked_key_is_refused_by_a_fresh_verifier(engine):
    key_id, token = auth.create_key(engine, role="operator", name=None)
    revoked = auth.revoke_key(engine, key_id)
    assert revoked["revoked_at"] is not None
    assert KeyVerifier(engine).verify(token) is None
    again = auth.revoke_key(engine, key_id)  # idempotent: the first revocation time stays
    assert again["revoked_at"] == revoked["revoked_at"]


def test_revocation_reaches_a_caching_verifier_within_recheck_seconds(engine):
    clock = FakeClock()
    key_id, token = auth.create_key(engine, role="reader", name=None)
    verifier = KeyVerifier(engine, recheck_seconds=5.0, clock=clock)
    assert verifier.verify(token) is not None
    auth.revoke_key(engine, key_id)
    clock.now += 1.0
    assert verifier.verify(token) is not None  # cached: not re-read yet
    clock.now += 5.0
    assert verifier.verify(token) is None
    assert verifier.verify(token) is None  # and it stays refused (the cache entry is gone)


def test_invalidate_forgets_cached_tokens(engine):
    key_id, token = auth.create_key(engine, role="reader", name=None)
    verifier = KeyVerifier(engine, recheck_seconds=3600)
    assert verifier.verify(token) is not None
    auth.revoke_key(engine, key_id)
    verifier.invalidate()
    assert verifier.verify(token) is None


def test_a_verified_token_does_not_pay_the_kdf_again(engine, monkeypatch):
    clock = FakeClock()
    _key_id, token = auth.create_key(engine, role="reader", name=None)
    kdf_calls = []
    real = hashlib.pbkdf2_hmac

    def counting(*args, **kwargs):
        kdf_calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(auth.hashlib, "pbkdf2_hmac", counting)
    verifier = KeyVerifier(engine, recheck_seconds=5.0, clock=clock)
    for _ in range(20):
        assert verifier.verify(token) is not None
        clock.now += 1.0  # crosses the recheck interval several times: a cheap revocation re-read, no KDF
    assert len(kdf_calls) == 1


@pytest.mark.parametrize(
    "have, need, ok",
    [
        ("reader", "reader", True),
        ("reader", "operator", False),
        ("operator", "reader", True),
        ("operator", "operator", True),
    ],
)
def test_roles(have, need, ok):
    info = KeyInfo(key_id="k", role=have, name=None)
    assert auth.allows(info, need) is ok
    assert KeyVerifier.allows(info, need) is ok


def test_no_key_allows_nothing():
    assert auth.allows(None, "reader") is False


def test_unknown_role_is_a_usage_error_naming_it(engine):
    with pytest.raises(UsageError, match=r"\[role\] 'admin'"):
        auth.create_key(engine, role="admin", name=None)
    with pytest.raises(UsageError, match=r"'superuser'"):
        auth.allows(KeyInfo(key_id="k", role="operator", name=None), "superuser")
    assert auth.list_keys(engine) == []


def test_unknown_key_id_on_revoke_is_a_usage_error_naming_it(engine):
    with pytest.raises(UsageError, match=r"\[unknown_key\].*'nope'"):
        auth.revoke_key(engine, "nope")


def test_list_keys_shows_every_key_oldest_first(engine):
    a, _ = auth.create_key(engine, role="reader", name="a")
    b, _ = auth.create_key(engine, role="operator", name="b")
    auth.revoke_key(engine, a)
    keys = auth.list_keys(engine)
    assert [(k["id"], k["role"], k["name"], k["revoked_at"] is None) for k in keys] == [
        (a, "reader", "a", False),
        (b, "operator", "b", True),
    ]
    assert keys[0]["created_at"].tzinfo is not None
