"""``python -m weaksup.train ...``: the pretrain command on its own, e.g. for torchrun.

    torchrun --nproc_per_node 8 -m weaksup.train --manifest sample.parquet --out runs/r34
"""

import typer

from weaksup.cli.pretrain import pretrain

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
app.command()(pretrain)

if __name__ == "__main__":
    app()
