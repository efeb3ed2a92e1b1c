"""``python -m benchmarks.gpu_suite --smoke``: every stage of the GPU suite runs on CPU at a tiny size, writes its
results under one folder, and a second call continues instead of starting over (so the suite cannot rot
between GPU runs)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import shared_data_dir

REPO = Path(__file__).resolve().parents[1]


def _suite(out: Path, *extra: str) -> dict:
    p = subprocess.run([sys.executable, "-m", "benchmarks.gpu_suite", "--smoke", "--out", str(out),
                        *extra], cwd=REPO, capture_output=True, text=True, timeout=600,
                       env={"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return json.loads((out / "suite.json").read_text())


@pytest.mark.slow
def test_smoke_runs_every_stage_and_resumes(tmp_path):
    out = tmp_path / "suite"
    state = _suite(out)
    stages = state["stages"]
    assert [k for k in stages] == ["env", "speed", "paper", "scoring"]
    assert all(s["status"] == "done" for s in stages.values()), {k: s.get("error") for k, s in stages.items()}
    assert stages["env"]["gpu"] is None                       # CPU: the CUDA-only tests stage is not run
    cases = stages["speed"]["cases"]
    assert set(cases) == {"spos-bf16", "spos_calr_ms-bf16", "fairnas-bf16", "spos-fp32", "fairnas-fp32",
                          "macro-spos-bf16"}
    for name, c in cases.items():
        assert isinstance(c, dict), f"{name}: {c}"
        assert c["steps_per_s"]["eager"] > 0 and c["steps_per_s"]["static"] > 0
    paper = stages["paper"]
    assert paper["step"] == paper["total_steps"] > 0           # the tiny paper run trained to the end
    if (shared_data_dir() / "nb201" / "nb201_200ep.csv").exists():   # ranked when the NB201 table is there
        assert -1 <= paper["rank_327"]["kendall_tau"] <= 1 and paper["rank_327"]["n"] == 327
    scoring = stages["scoring"]
    assert set(scoring["archs_per_s"]) == {"1", "4"} and scoring["best_arch_batch"] in (1, 4)
    assert (out / "suite.log").exists() and (out / "paper_run.tar").exists()

    state = _suite(out)                                     # a second call: everything done is skipped
    assert len(state["calls"]) == 2
    log = (out / "suite.log").read_text()
    for stage in ("env", "speed", "paper", "scoring"):
        assert f"{stage}: done in an earlier call, skipped" in log
