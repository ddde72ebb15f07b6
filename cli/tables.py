"""Schema commands: schema, validate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from weaksup.cli.common import console, run


def schema(name: Annotated[Optional[str], typer.Argument(help="Table name; omit to list them.")] = None) -> None:
    """Print a table's schema as JSON (or list the tables)."""
    from weaksup.tables import load_schema, schema_names

    if name is None:
        for n in schema_names():
            console.print(f"{n}: {load_schema(n).description}", markup=False)
        return
    console.print_json(run(load_schema, name).to_json())


def validate(
    name: Annotated[str, typer.Argument(help="Table name, e.g. labels.")],
    file: Annotated[Path, typer.Argument(help="Parquet file to check.")],
) -> None:
    """Check a Parquet file against a schema: exit 0, or exit 2 with the problem."""
    from weaksup.tables import validate_file

    rows = run(validate_file, name, file)
    console.print(f"{file}: valid {name} table, {rows} rows", markup=False)


def register(app: typer.Typer) -> None:
    app.command("schema")(schema)
    app.command("validate")(validate)
