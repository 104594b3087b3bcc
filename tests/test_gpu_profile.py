"""benchmarks/gpu_profile.py runs on a CPU with tiny shapes (its GPU run needs the device tool)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import gpu_profile  # noqa: E402


def test_the_gpu_profile_runs_on_cpu_with_tiny_shapes(tmp_path, capsys):
    result = gpu_profile.main(["--device", "cpu", "--tiny", "--compile", "off", "--json", str(tmp_path / "r.json")])
    assert [r["compile"] for r in result["train"]] == [False] and result["train"][0]["mfu"] is None  # no CPU peak
    assert [r["new_tokens"] for r in result["generate"]] == [8, 16]
    assert all(r["ours_over_hf"] > 0 for r in result["generate"])
    shares = result["ppo"]["shares"]
    assert len(shares) == 3 and sum(shares.values()) == pytest.approx(1.0)
    assert "one PPO iteration" in capsys.readouterr().out and (tmp_path / "r.json").is_file()


def test_a_device_this_machine_lacks_is_refused_before_any_work():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError, match="device"):
        gpu_profile.main(["--device", "cuda"])
