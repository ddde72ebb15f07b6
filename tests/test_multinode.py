"""Multi-node pre-training: two torchrun "nodes" on localhost meeting through c10d rendezvous,
and an elastic restart that resumes from the last checkpoint.

Each node is its own ``torchrun --nnodes 2 --nproc-per-node 1 --rdzv-backend c10d`` agent,
which is the real multi-node path (rendezvous, store, node ranks), just with both agents on
one machine. The runs use the ``tiny`` preset on the tiny stripe videos of
test_pretrain.py, on the CPU with Gloo.

The failure is injected without any hook in the library: torchrun runs a wrapper script,
written into the test's tmp dir, that patches ``torch.optim.SGD.step`` in rank 1 to kill
the process (``os._exit``, like an OOM kill) at its fifth optimizer step, once: a marker
file, created atomically by the dying worker, keeps the restarted worker alive.
TORCHELASTIC_RESTART_COUNT cannot serve as "first attempt" here, because an agent whose
own workers did not fail restarts them with the count unchanged, and ranks may be
reassigned between rendezvous rounds.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from test_pretrain import write_manifest

from weaksup.errors import InputError
from weaksup.train.loop import check_resumed_together, restart_hazard

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()), reason="torch.distributed with Gloo is not available"
)

TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]  # what /work/venv/bin/torchrun runs
STEPS, CHECKPOINT_EVERY, FAIL_AT_STEP = 6, 2, 5
# a fixed thread count: runs compared bit for bit must not adapt theirs to the load
TRAIN_ARGS = [
    "--preset",
    "tiny",
    "--max-steps",
    str(STEPS),
    "--checkpoint-every",
    str(CHECKPOINT_EVERY),
    "--log-every",
    "1",
    "--keep-checkpoints",
    "5",
    "--device",
    "cpu",
    "--threads",
    "1",
    "--no-progress",
]
TIMEOUT_S = 120

DIE_ONCE = textwrap.dedent(
    """
    # torchrun runs this instead of `-m weaksup.train`: rank 1 dies once, mid-run
    import os
    import torch

    marker = os.environ["WEAKSUP_TEST_DIED"]
    if os.environ["RANK"] == "1" and not os.path.exists(marker):
        original, calls = torch.optim.SGD.step, [0]

        def step(self, *args, **kwargs):
            calls[0] += 1
            if calls[0] == {fail_at}:
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                os._exit(13)
            return original(self, *args, **kwargs)

        torch.optim.SGD.step = step

    import sys

    from weaksup.cli.main import main

    sys.argv[1:1] = ["pretrain"]
    main()
    """
).replace("{fail_at}", str(FAIL_AT_STEP))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_nodes(
    program: list[str], args: list[str], *, cwd: Path, max_restarts: int = 0, env: dict[str, str] | None = None
) -> list[subprocess.CompletedProcess]:
    """Start two torchrun agents (one node each, one worker each) and wait for both.

    Each agent leads its own process group, so on a timeout the agent and its workers are
    killed together and nothing is left behind.
    """
    port, run_id = free_port(), f"weaksup-test-{uuid.uuid4().hex[:8]}"
    cmd = [
        *TORCHRUN,
        "--nnodes",
        "2",
        "--nproc-per-node",
        "1",
        "--rdzv-backend",
        "c10d",
        "--rdzv-endpoint",
        f"localhost:{port}",
        "--rdzv-id",
        run_id,
        "--rdzv-conf",
        "join_timeout=60",
        "--max-restarts",
        str(max_restarts),
        "--monitor-interval",
        "0.2",
        *program,
        *args,
    ]
    # restarts need a fresh rendezvous store per round (see weaksup.train.loop.restart_hazard)
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1", **(env or {})}
    # cwd outside the repo: "-m" puts the cwd first on sys.path, and the source tree's weaksup
    # (whose cli/ is mapped only by the install) would shadow the installed package
    procs = [
        subprocess.Popen(
            cmd,
            cwd=cwd,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        for _ in range(2)
    ]
    results = []
    try:
        for p in procs:
            out, _ = p.communicate(timeout=TIMEOUT_S)
            results.append(subprocess.CompletedProcess(cmd, p.returncode, out, ""))
    except subprocess.TimeoutExpired:
        pytest.fail(f"torchrun nodes did not finish within {TIMEOUT_S} s")
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    return results


def tail(results: list[subprocess.CompletedProcess]) -> str:
    return "\n".join(f"--- node {i} (rc {r.returncode})\n{r.stdout[-2500:]}" for i, r in enumerate(results))


def losses(out: Path) -> list[str]:
    import csv

    with open(out / "log.csv", newline="") as fh:
        return [row["loss"] for row in csv.DictReader(fh)]


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_manifest(tmp_path_factory.mktemp("videos"), per_class=6)


@pytest.fixture(scope="module")
def straight(manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted two-node run: the reference for the restarted one."""
    root = tmp_path_factory.mktemp("straight")
    results = launch_nodes(
        ["-m", "weaksup.train"], ["--manifest", str(manifest), "--out", str(root / "run"), *TRAIN_ARGS], cwd=root
    )
    assert all(r.returncode == 0 for r in results), tail(results)
    return root / "run"


def test_two_nodes_with_c10d_rendezvous_train_in_step(straight: Path) -> None:
    from weaksup.train.config import TrainConfig, preset

    summary = json.loads((straight / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["total_batch"] == 2 * 4
    assert summary["steps"] == STEPS and summary["steps_this_run"] == STEPS and summary["resumed_from_step"] is None
    hashes = summary["ranks_weights_sha256"]
    assert len(hashes) == 2 and hashes[0] == hashes[1] == summary["weights_sha256"] and summary["ranks_in_sync"]
    # linear scaling: the tiny preset's LR belongs to 4 clips a step; two nodes make 8
    assert summary["peak_lr"] == pytest.approx(preset("tiny").base_lr * 2)
    assert TrainConfig.from_dict(json.loads((straight / "config.json").read_text())) == preset("tiny").override(
        max_steps=STEPS, checkpoint_every=CHECKPOINT_EVERY, log_every=1, keep_checkpoints=5, device="cpu", threads=1
    )
    assert [p.name for p in sorted((straight / "checkpoints").glob("step_*.pt"))] == [
        f"step_{s:09d}.pt" for s in range(CHECKPOINT_EVERY, STEPS + 1, CHECKPOINT_EVERY)
    ]


def test_elastic_restart_resumes_and_ends_with_the_uninterrupted_weights(
    manifest: Path, straight: Path, tmp_path: Path
) -> None:
    from weaksup.train.checkpoint import load_checkpoint

    wrapper = tmp_path / "die_once.py"
    wrapper.write_text(DIE_ONCE)
    marker = tmp_path / "rank1-died"
    out = tmp_path / "run"
    results = launch_nodes(
        [str(wrapper)],
        ["--manifest", str(manifest), "--out", str(out), *TRAIN_ARGS],
        cwd=tmp_path,
        max_restarts=1,
        env={"WEAKSUP_TEST_DIED": str(marker)},
    )
    assert all(r.returncode == 0 for r in results), tail(results)
    assert marker.exists(), "rank 1 never died: the test did not test a restart"
    assert any("exitcode: 13" in r.stdout for r in results), tail(results)

    summary = json.loads((out / "summary.json").read_text())
    reference = json.loads((straight / "summary.json").read_text())
    # killed in step 5: the restarted workers load step 4's checkpoint and train steps 5 and 6
    last = FAIL_AT_STEP - 1 - (FAIL_AT_STEP - 1) % CHECKPOINT_EVERY
    assert summary["resumed_from_step"] == last and summary["steps_this_run"] == STEPS - last
    assert summary["world_size"] == 2 and summary["ranks_in_sync"]
    assert summary["weights_sha256"] == reference["weights_sha256"]
    a = load_checkpoint(straight / "checkpoints" / f"step_{STEPS:09d}.pt")
    b = load_checkpoint(out / "checkpoints" / f"step_{STEPS:09d}.pt")
    for key, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][key]), key
    for i, slot in a["optimizer"]["state"].items():
        assert torch.equal(slot["momentum_buffer"], b["optimizer"]["state"][i]["momentum_buffer"])
    assert a["sampler"] == b["sampler"]
    assert losses(out) == losses(straight)  # log.csv cut back to the checkpoint, then the same rows


def test_ranks_that_resume_from_different_checkpoints_stop_with_one_line(tmp_path: Path) -> None:
    """A checkpoint folder only rank 0 sees (node-local --out) must not silently desynchronise the ranks."""
    check_resumed_together([4, 4], tmp_path)  # the same checkpoint everywhere: go on
    check_resumed_together([0, 0], tmp_path)  # a fresh run
    with pytest.raises(
        InputError,
        match=r"resumed from different checkpoints \(rank 0: step 6, rank 1: step 0\); "
        r"--out must be on storage that every node sees",
    ):
        check_resumed_together([6, 0], tmp_path)


def test_restart_hazard_names_the_shared_store_fix() -> None:
    shared = {"TORCHELASTIC_MAX_RESTARTS": "3", "TORCHELASTIC_USE_AGENT_STORE": "True"}
    message = restart_hazard(shared)
    assert message is not None and "TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1" in message and "--max-restarts 3" in message
    assert restart_hazard({**shared, "TORCHELASTIC_USE_AGENT_STORE": "False"}) is None  # the fix is set
    assert restart_hazard({**shared, "TORCHELASTIC_MAX_RESTARTS": "0"}) is None  # nothing will restart
    assert restart_hazard({}) is None  # not under torchrun
