"""``python -m weaksup.train ...``: the pretrain command on its own, e.g. for torchrun.

    torchrun --nproc_per_node 8 -m weaksup.train --manifest sample.parquet --out runs/r34

A program, not library code: it hands this process over (``os.execv``, same pid and
environment, so torchrun's worker bookkeeping holds) to ``weaksup pretrain``, so the
library never imports the CLI layer and both take exactly the same options.
"""

import os
import sys


def main() -> None:
    os.execv(sys.executable, [sys.executable, "-m", "weaksup.cli.main", "pretrain", *sys.argv[1:]])


if __name__ == "__main__":
    main()
