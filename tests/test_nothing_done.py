"""Nothing done is not success (issue 15, item 8): the rule of weaksup.bulk and the CLI's exit 3."""

from __future__ import annotations

import pyarrow as pa
import pytest
import typer

from weaksup.bulk import nothing_done, nothing_done_message
from weaksup.cli.common import NOTHING_DONE_EXIT
from weaksup.cli.common import nothing_done as exit_if_nothing_done


def test_every_row_rejected_or_no_row_is_nothing_done() -> None:
    rejected = pa.table(
        {"status": ["rejected", "rejected", "rejected"], "error": ["not found: a", "not found: b", "not a video: c"]}
    )
    assert (
        nothing_done(rejected, "video") == "nothing done: all 3 videos were rejected (not found (2), not a video (1))"
    )
    assert (
        nothing_done(pa.table({"status": pa.array([], pa.string()), "error": pa.array([], pa.string())}), "video")
        == "nothing done: the input has no videos"
    )
    # any result that is not a rejection is work done (fingerprint's flat videos included)
    assert nothing_done(pa.table({"status": ["rejected", "ok"], "error": ["x", None]})) is None
    assert nothing_done(pa.table({"status": ["unfingerprintable"], "error": ["flat"]})) is None
    assert nothing_done_message(4, 3, "clip") is None
    assert nothing_done_message(2, 2, "clip", {"decode": 2}) == "nothing done: all 2 clips were rejected (decode (2))"


def test_cli_helper_exits_3_unless_allowed() -> None:
    exit_if_nothing_done(None, allow_empty=False)  # something was done: no exit
    with pytest.raises(typer.Exit) as exc:
        exit_if_nothing_done("nothing done: all 2 videos were rejected", allow_empty=False)
    assert exc.value.exit_code == NOTHING_DONE_EXIT == 3
    exit_if_nothing_done("nothing done: all 2 videos were rejected", allow_empty=True)  # a warning only
