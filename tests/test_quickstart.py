"""weaksup.quickstart: stage stamps (resume), the config key, the comparison of arms."""

import json
from pathlib import Path

import pytest

from weaksup.quickstart import QuickstartConfig, _compare, _Stages


def test_stages_resume_only_stamps_of_the_same_config(tmp_path):
    calls = []

    def stage():
        calls.append(1)
        return {"n": len(calls)}, f"ran {len(calls)}"

    first = _Stages(tmp_path, "key-a", progress=False, resume=True)
    assert first.run("probe", stage) == {"n": 1} and not first.reused
    again = _Stages(tmp_path, "key-a", progress=False, resume=True)
    assert not again.other_config()
    assert again.run("probe", stage) == {"n": 1} and again.reused == ["probe"] and len(calls) == 1
    assert again.lines["probe"] == "ran 1"
    other = _Stages(tmp_path, "key-b", progress=False, resume=True)
    assert other.other_config()
    assert other.run("probe", stage) == {"n": 2} and len(calls) == 2
    no_resume = _Stages(tmp_path, "key-b", progress=False, resume=False)
    assert no_resume.run("probe", stage) == {"n": 3}
    stamp = json.loads((tmp_path / ".quickstart" / "probe.json").read_text())
    assert stamp["key"] == "key-b" and stamp["value"] == {"n": 3}


def test_config_key_ignores_where_and_how_fast():
    a = QuickstartConfig(out=Path("a"), workers=2, progress=True)
    assert a.key() == QuickstartConfig(out=Path("b"), workers=0, progress=False, resume=False).key()
    assert a.key() != QuickstartConfig(seed=1).key() != QuickstartConfig(pretrain_steps=10).key()


def test_compare_pairs_seeds_and_videos():
    pre = [{"v1": 1, "v2": 1, "v3": 0}, {"v1": 1, "v2": 0, "v3": 1}]
    scratch = [{"v1": 0, "v2": 0, "v3": 0}, {"v1": 0, "v2": 1, "v3": 0}]
    r = _compare(pre, scratch, 0.25, 0, a="pre-trained", b="scratch")
    assert r["arms"] == ["pre-trained", "scratch"] and r["seeds"] == 2 and r["videos"] == 3
    assert r["a"]["mean"] == pytest.approx(4 / 6, abs=1e-4) and r["b"]["mean"] == pytest.approx(1 / 6, abs=1e-4)
    one = _compare([pre[0]], scratch, 0.25, 0, a="x", b="y")  # one network vs two seeds: repeated to pair
    assert one["seeds"] == 2
