"""`tradeops keys` commands (thin wrappers over ``tradeops.deploy.auth``)."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any, Optional

import typer
from rich.table import Table
from sqlalchemy import Engine

from tradeops.cli.common import console, err_console, fail, settings_of
from tradeops.errors import TradeopsError

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")]

keys_app = typer.Typer(
    name="keys",
    help="API keys of the signal service: create (prints the token once), list, revoke.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _engine(ctx: typer.Context) -> Engine:
    from tradeops.deploy.predlog import open_database

    return open_database(settings_of(ctx).service_database_url)


def _public(key: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": key["id"],
        "name": key["name"],
        "role": key["role"],
        "created_at": key["created_at"].isoformat(),
        "revoked_at": key["revoked_at"].isoformat() if key["revoked_at"] else None,
    }


@keys_app.command("create")
def create_cmd(
    ctx: typer.Context,
    role: Annotated[str, typer.Option("--role", help="reader (signals, models) or operator (also admin).")],
    name: Annotated[Optional[str], typer.Option("--name", help="A label for the key (who or what uses it).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an API key and print its token once (it is stored only as a salted hash)."""
    from tradeops.deploy.auth import check_role, create_key

    try:
        check_role(role)
        engine = _engine(ctx)
        key_id, token = create_key(engine, role=role, name=name)
        engine.dispose()
    except TradeopsError as exc:
        fail(exc)
    if as_json:
        sys.stdout.write(json.dumps({"id": key_id, "role": role, "name": name, "token": token}) + "\n")
        return
    sys.stdout.write(token + "\n")
    err_console.print(
        f"created {role} key {key_id}" + (f" ({name})" if name else "") + ": the token above is shown only once",
        highlight=False,
    )


@keys_app.command("list")
def list_cmd(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Every API key: id, name, role, created, revoked (never the token or its hash)."""
    from tradeops.deploy.auth import list_keys

    try:
        engine = _engine(ctx)
        keys = [_public(k) for k in list_keys(engine)]
        engine.dispose()
    except TradeopsError as exc:
        fail(exc)
    if as_json:
        sys.stdout.write(json.dumps({"keys": keys}, indent=2) + "\n")
        return
    if not keys:
        console.print("no API keys; create one with `tradeops keys create --role reader`", highlight=False)
        return
    table = Table("id", "name", "role", "created", "revoked")
    for k in keys:
        table.add_row(k["id"], k["name"] or "", k["role"], k["created_at"], k["revoked_at"] or "")
    console.print(table)


@keys_app.command("revoke")
def revoke_cmd(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(metavar="ID", help="The key id (see `tradeops keys list`).")],
    as_json: JsonOpt = False,
) -> None:
    """Revoke an API key: the service refuses it from then on (within its recheck interval)."""
    from tradeops.deploy.auth import revoke_key

    try:
        engine = _engine(ctx)
        key = _public(revoke_key(engine, key_id))
        engine.dispose()
    except TradeopsError as exc:
        fail(exc)
    if as_json:
        sys.stdout.write(json.dumps(key) + "\n")
        return
    console.print(f"revoked key {key['id']} ({key['role']}) at {key['revoked_at']}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the ``keys`` group to the root app."""
    app.add_typer(keys_app, name="keys")
