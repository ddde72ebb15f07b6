"""Temporal split command: splits (short / long / long-center clips, optionally cut to files)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from weaksup.cli.common import (
    AllowEmptyOption,
    EngineOption,
    ProgressOption,
    RayAddressOption,
    nothing_done,
    one_line_warnings,
    print_summary,
    run,
)
from weaksup.errors import InputError


def _check_outputs(out: Path, materialize: Optional[Path]) -> None:
    """Refuse an --out that the materialized clips table would overwrite."""
    if materialize is None:
        return
    from weaksup.assembly.splits import materialized_paths

    taken = {p.resolve() for p in materialized_paths(materialize)}
    if out.resolve() in taken:
        raise InputError(
            f"{out}: --out is a file that --materialize {materialize} writes; pick another --out or folder"
        )


def splits(
    manifest: Annotated[Path, typer.Option(help="Manifest table (.parquet) from match.")],
    probe: Annotated[
        Path, typer.Option(help="Probe table (.parquet); videos it lacks fall back to the manifest's duration_s.")
    ],
    kind: Annotated[
        str,
        typer.Option(help="short (1-5 s videos), long (55-60 s) or long-center (central window of the long videos)."),
    ],
    out: Annotated[Path, typer.Option(help="Output clips table (.parquet); a .summary.json goes beside it.")],
    min_s: Annotated[
        Optional[float], typer.Option(help="Shortest video kept, seconds (default: the kind's bound).")
    ] = None,
    max_s: Annotated[
        Optional[float], typer.Option(help="Longest video kept, seconds (default: the kind's bound).")
    ] = None,
    center_s: Annotated[float, typer.Option(help="long-center: window length in seconds.")] = 4.0,
    total_duration_s: Annotated[
        Optional[float],
        typer.Option(help="F2: take videos in seeded priority order until the clips sum to this many seconds."),
    ] = None,
    max_videos: Annotated[
        Optional[int], typer.Option(help="F1: take at most this many videos (seeded priority order).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the priority order used by the budgets.")] = 0,
    materialize: Annotated[
        Optional[Path], typer.Option(help="Also cut each clip into DIR/{video_id}.mp4 (resumable).")
    ] = None,
    short_side: Annotated[int, typer.Option(help="materialize: short side of the cut files in pixels (even).")] = 128,
    gop: Annotated[int, typer.Option(help="materialize: keyframe interval in frames.")] = 16,
    codec: Annotated[str, typer.Option(help="materialize: video encoder.")] = "libx264",
    crf: Annotated[int, typer.Option(help="materialize: encoder quality (lower is better).")] = 23,
    workers: Annotated[int, typer.Option(help="materialize: worker processes (0 = in-process).")] = 2,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume/--no-resume",
            help=(
                "materialize: continue from what an earlier run of the same input and settings left in OUT "
                "(--no-resume: start over, deleting the parts of an earlier run first)."
            ),
        ),
    ] = True,
    resume_strict: Annotated[
        bool,
        typer.Option(
            "--resume-strict",
            help="materialize: stop (exit 2) when parts of an earlier run do not match this job's clips "
            "or cut settings, instead of recomputing them with a warning.",
        ),
    ] = False,
    engine: EngineOption = "local",
    ray_address: RayAddressOption = None,
    allow_empty: AllowEmptyOption = False,
    progress: ProgressOption = True,
) -> None:
    """Build a temporal split (paper Table 3): virtual clip windows, optionally cut to files.

    A selection that keeps no video, or a --materialize that cuts no clip, still writes its
    tables, with a warning and exit code 3 (unless --allow-empty)."""
    from weaksup.assembly.splits import SplitsConfig, check_materialize_options, make_splits, materialize_clips

    run(_check_outputs, out, materialize)
    if materialize is not None:  # bad cut settings stop before the clips table is written
        run(
            check_materialize_options,
            materialize,
            short_side=short_side,
            gop=gop,
            codec=codec,
            crf=crf,
            workers=workers,
            engine=engine,
            ray_address=ray_address,
        )
    cfg = SplitsConfig(
        manifest=manifest,
        probe=probe,
        kind=kind,
        out=out,
        min_s=min_s,
        max_s=max_s,
        center_s=center_s,
        total_duration_s=total_duration_s,
        max_videos=max_videos,
        seed=seed,
    )
    summary = run(make_splits, cfg)
    print_summary(f"splits ({kind}) -> {out}", summary)
    if summary["selected"] == 0:
        reasons = {
            k: summary[k]
            for k in ("over_budget", "too_short", "too_long", "no_duration", "probe_rejected")
            if summary[k]
        }
        why = ", ".join(f"{k.replace('_', ' ')} ({v})" for k, v in reasons.items()) or "the manifest has no rows"
        nothing_done(
            f"nothing done: the selection keeps none of the {summary['manifest_rows']} manifest rows ({why})",
            allow_empty,
        )
    if materialize is not None:
        with one_line_warnings():
            mat = run(
                materialize_clips,
                out,
                materialize,
                short_side=short_side,
                gop=gop,
                codec=codec,
                crf=crf,
                workers=workers,
                engine=engine,
                ray_address=ray_address,
                resume=resume,
                resume_strict=resume_strict,
                progress=progress,
            )
        print_summary(f"materialize -> {materialize}", mat)
        from weaksup.bulk import nothing_done_message

        if mat["clips"]:  # no clips at all was reported above (and allowed)
            nothing_done(
                nothing_done_message(mat["clips"], mat["rejected"], "clip", mat["rejected_by_reason"]), allow_empty
            )


def register(app: typer.Typer) -> None:
    app.command("splits")(splits)
