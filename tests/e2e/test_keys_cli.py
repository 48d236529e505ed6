"""`tradeops keys create|list|revoke`: the token is printed once, never listed or stored; bad usage exits 2."""

from __future__ import annotations

import json

from tradeops.config import load_settings
from tradeops.deploy import auth, predlog


def _verifier(home):
    engine = predlog.make_engine(load_settings(home=home).service_database_url)
    return auth.KeyVerifier(engine), engine


def test_create_prints_the_token_once_and_list_never_shows_it(tradeops, tmp_path):
    home = tmp_path / "home"
    created = tradeops(home, "keys", "create", "--role", "reader", "--name", "dashboard")
    assert created.exit_code == 0, created.output
    token = created.stdout.strip()
    assert token.startswith("to_") and created.stdout.count(token) == 1
    key_id = token.split("_")[1]
    assert key_id in created.stderr and "only once" in created.stderr and token not in created.stderr

    listed = tradeops(home, "keys", "list")
    assert listed.exit_code == 0 and key_id in listed.stdout and "dashboard" in listed.stdout
    as_json = tradeops(home, "keys", "list", "--json")
    keys = as_json.json()["keys"]
    assert [k["id"] for k in keys] == [key_id] and keys[0]["role"] == "reader" and keys[0]["revoked_at"] is None
    secret = token.split("_", 2)[2]
    for out in (listed.output, as_json.output):
        assert secret not in out
    for f in home.glob("service.db*"):
        assert secret.encode() not in f.read_bytes()

    verifier, engine = _verifier(home)
    info = verifier.verify(token)
    engine.dispose()
    assert info is not None and info.role == "reader" and not auth.allows(info, "operator")


def test_create_json_and_revoke(tradeops, tmp_path):
    home = tmp_path / "home"
    out = tradeops(home, "keys", "create", "--role", "operator", "--json")
    assert out.exit_code == 0, out.output
    made = json.loads(out.stdout)
    assert made["role"] == "operator" and made["name"] is None and made["token"].startswith(f"to_{made['id']}_")

    revoked = tradeops(home, "keys", "revoke", made["id"])
    assert revoked.exit_code == 0, revoked.output
    assert f"revoked key {made['id']}" in revoked.stdout
    listed = tradeops(home, "keys", "list", "--json").json()["keys"]
    assert listed[0]["revoked_at"] is not None

    verifier, engine = _verifier(home)
    assert verifier.verify(made["token"]) is None
    engine.dispose()


def test_unknown_role_exits_2_naming_it(tradeops, tmp_path):
    home = tmp_path / "home"
    out = tradeops(home, "keys", "create", "--role", "admin")
    assert out.exit_code == 2
    assert "[role] 'admin'" in out.stderr and "reader, operator" in out.stderr
    assert out.stdout == ""


def test_unknown_key_id_exits_2_naming_it(tradeops, tmp_path):
    home = tmp_path / "home"
    out = tradeops(home, "keys", "revoke", "deadbeef0000")
    assert out.exit_code == 2
    assert "[unknown_key]" in out.stderr and "deadbeef0000" in out.stderr


def test_list_on_a_new_home_says_how_to_create_one(tradeops, tmp_path):
    out = tradeops(tmp_path / "home", "keys", "list")
    assert out.exit_code == 0 and "tradeops keys create" in out.stdout


def test_unusable_database_url_exits_2_without_a_traceback(tradeops, tmp_path):
    out = tradeops(tmp_path / "home", "keys", "list", env={"TRADEOPS_DATABASE_URL": "nosuchdb://x/y"})
    assert out.exit_code == 2, out.output
    assert "[database_url]" in out.stderr and "Traceback" not in out.output
