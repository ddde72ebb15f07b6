"""Schema commands: schema, validate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from weaksup.cli.common import OLD_POSITIONALS, check_option, console, deprecated_option, run


def schema(
    name: Annotated[Optional[str], typer.Option(help="Table name; omit to list them.")] = None,
    ctx: typer.Context = None,  # type: ignore[assignment]
) -> None:
    """Print a table's schema as JSON (or list the tables)."""
    from weaksup.tables import load_schema, schema_names

    if ctx is not None and ctx.args:
        deprecated_option("schema NAME", "schema --name NAME")
        check_option(len(ctx.args) == 1 and name is None, "schema takes --name NAME")
        name = ctx.args[0]
    if name is None:
        for n in schema_names():
            console.print(f"{n}: {load_schema(n).description}", markup=False)
        return
    console.print_json(run(load_schema, name).to_json())


def validate(
    schema: Annotated[Optional[str], typer.Option(help="Table name (schema), e.g. labels (required).")] = None,
    table: Annotated[Optional[Path], typer.Option(help="Parquet file to check (required).")] = None,
    ctx: typer.Context = None,  # type: ignore[assignment]
) -> None:
    """Check a Parquet file against a schema: exit 0, or exit 2 with the problem."""
    from weaksup.tables import validate_file

    old_positionals = list(ctx.args) if ctx is not None else []
    if old_positionals:
        deprecated_option("validate NAME FILE", "validate --schema NAME --table FILE")
        check_option(
            len(old_positionals) == 2 and schema is None and table is None, "validate takes --schema NAME --table FILE"
        )
        schema, table = old_positionals[0], Path(old_positionals[1])
    check_option(schema is not None and table is not None, "--schema and --table are required")
    rows = run(validate_file, schema, table)
    console.print(f"{table}: valid {schema} table, {rows} rows", markup=False)


def register(app: typer.Typer) -> None:
    app.command("schema", context_settings=OLD_POSITIONALS)(schema)
    app.command("validate", context_settings=OLD_POSITIONALS)(validate)
