"""Finding 6 (paper Table 3): short vs long vs long-center pre-training clips, under F1 and F2 budgets.

Toy bounds (the corpus's videos are 1-60 s): short 1-5 s, long 30-60 s, long-center = the
central 4 s of the long videos. F1: the same number of videos in each split (the number of
long videos); F2: the same total duration (that of every short video), which leaves long
only a few videos. Each split pre-trains for the same steps (batch 16, or the split's size
when smaller); fc-only top-1 on the target. The paper: F1 long > short > long-center;
F2 short >> long. Intervals: paired bootstrap over target test videos and seeds.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import common as C

from weaksup.assembly.probe import ProbeConfig, probe_videos
from weaksup.assembly.splits import SplitsConfig, make_splits

extra = C.argparse.ArgumentParser(add_help=False)
extra.add_argument(
    "--web-videos",
    type=int,
    default=C.CORPUS["n_videos"],
    help="web videos in the corpus (default %(default)s; more gives F1 more long videos)",
)
extra.add_argument("--budgets", nargs="+", default=["F1", "F2"], choices=["F1", "F2"])
extra.add_argument(
    "--whole-action",
    action="store_true",
    help="web videos show their action from start to end (default: long ones in a 25-75%% window)",
)
extra.add_argument(
    "--shot-length",
    type=float,
    default=0.0,
    help="cut web videos longer than this many seconds into shots, each a new scene showing the action "
    "throughout (default 0: one scene)",
)
more, sys.argv[1:] = extra.parse_known_args()
a = C.args(__doc__)
t = C.Timer()
p = C.corpus(a.out, more.web_videos, more.whole_action, more.shot_length)
tag = (
    ("" if more.web_videos == C.CORPUS["n_videos"] else f"_{more.web_videos}web")
    + ("_wholeaction" if more.whole_action else "")
    + (f"_shots{more.shot_length:g}s" if more.shot_length else "")
)
d = a.out / f"temporal{tag}"
probe = d / "probe.parquet"
if not probe.exists():
    probe_videos(ProbeConfig(videos=p["pool"], out=probe, workers=2, progress=False))
bounds = {"short": (1.0, 5.0), "long": (30.0, 60.0), "long-center": (30.0, 60.0)}


def split(kind, budget, **kw):
    out = d / f"{budget}_{kind}.parquet"
    s = make_splits(
        SplitsConfig(
            manifest=p["pool"],
            probe=probe,
            kind=kind,
            out=out,
            min_s=bounds[kind][0],
            max_s=bounds[kind][1],
            seed=0,
            **kw,
        )
    )
    return out, s


_, long_all = split("long", "all")
n_long = long_all["selected"]
total = split("short", "all")[1]["clip_seconds"]  # F2 budget: the summed length of every short video
arms = {}
if "F1" in more.budgets:
    arms.update({f"F1 {k}": split(k, "F1", max_videos=n_long) for k in ("short", "long", "long-center")})
if "F2" in more.budgets:
    arms.update({f"F2 {k}": split(k, "F2", total_duration_s=total) for k in ("short", "long")})
hits = {name: [] for name in arms}
for seed in a.seeds:
    for name, (man, s) in arms.items():
        ckpt = a.out / f"pretrain_{name.replace(' ', '_')}{tag}_{a.steps}_s{seed}"
        # F2's long split can hold fewer videos than a batch of 16: shrink its batch (lr scales with it)
        C.pretrain(man, p["labels"], ckpt, a.steps, seed, batch_size=min(16, s["selected"]))
        hits[name].append(C.fc_only_target(p, ckpt, ckpt / "fc_target", seed))
tests = {
    "F1 long > short": ("F1 long", "F1 short"),
    "F1 short > long-center": ("F1 short", "F1 long-center"),
    "F2 short > long": ("F2 short", "F2 long"),
}
tests = {k: v for k, v in tests.items() if k[:2] in more.budgets}
res = {k: C.compare(hits[x], hits[y]) for k, (x, y) in tests.items()}
videos = {name: s["selected"] for name, (_, s) in arms.items()}
# a run on other seeds than the default (a replication) gets its own results file
seeds_tag = "" if a.seeds == [0, 1, 2] else f"_seeds{'-'.join(map(str, a.seeds))}"
C.save(
    a.out,
    f"temporal_splits{tag}{seeds_tag}",
    {
        "web_videos": more.web_videos,
        "whole_action": more.whole_action,
        "shot_length_s": more.shot_length,
        "videos": videos,
        "total_duration_s": total,
        "seeds": a.seeds,
        **{k: v.to_dict() for k, v in res.items()},
        "seconds": round(t.seconds),
    },
)
for k, cmp in res.items():
    x, y = tests[k]
    command = "temporal_splits.py"
    command += f" --web-videos {more.web_videos}" if more.web_videos != C.CORPUS["n_videos"] else ""
    command += (" --whole-action" if more.whole_action else "") + (
        f" --shot-length {more.shot_length:g}" if more.shot_length else ""
    )
    print(
        f"| 6. {k} | `{command}` | {x} {videos[x]} videos vs {y} {videos[y]} videos (F1 = {n_long} videos each, "
        f"F2 = {total:.0f} s each), {a.steps} steps, seeds {a.seeds} | {cmp.a.percent()} vs {cmp.b.percent()}; "
        f"{cmp.diff.percent(True)} | {C.verdict(cmp)} | {t} |"
    )
