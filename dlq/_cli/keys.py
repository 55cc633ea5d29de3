"""``dlq keys generate|rotate``: the encryption key ring (``DLQ_ENCRYPTION_KEYS``)."""

from __future__ import annotations

from typing import Annotated

import typer

from dlq._blocking import DLQService
from dlq._cli._common import app, console, print_result, run
from dlq._keys import generate_key

keys_app = typer.Typer(help="The encryption key ring (DLQ_ENCRYPTION_KEYS).",
                       no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("generate")
def keys_generate(key_id: Annotated[str | None, typer.Option(
        "--id", help="The key's id (default: k + the UTC date and time).")] = None) -> None:
    """Print a new key as key_id:base64(32 random bytes).

    Put it first in DLQ_ENCRYPTION_KEYS to encrypt new data with it; keep the
    old keys after it until `dlq keys rotate` has run and old histories closed.
    """
    try:
        key = generate_key(key_id)
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--id") from None
    # Plain print: no wrapping or markup in what is pasted into a secret store.
    print(key)


@keys_app.command("rotate")
def keys_rotate(batch: Annotated[int, typer.Option(
        min=1, help="Rows per transaction.")] = 500) -> None:
    """Re-encrypt the SQL read model's data with the first key of DLQ_ENCRYPTION_KEYS.

    Safe beside a running worker, and to run again after an interruption.
    """

    def call(service: DLQService) -> dict[str, object]:
        from dlq._db import create_db_engine
        from dlq._sql.rotation import reencrypt_read_model

        config = service.config
        engine = create_db_engine(config.database_url, key_ring=config.key_ring)
        try:
            result = reencrypt_read_model(engine=engine, batch=batch)
        finally:
            engine.dispose()
        return {"key_id": result.key_id, "rows_scanned": result.scanned,
                "rows_rewritten": result.rewritten}

    result = run(call)
    print_result(result)
    console.print(f"every data column is now encrypted with key {result['key_id']!r}")
