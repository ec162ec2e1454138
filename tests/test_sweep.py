"""The LoRA sweep: the shipped grid covers what it must, grids are checked, the choice follows its stated
order, and a tiny sweep (one step a run, a few examples) writes its record and plot and resumes."""
import json

import pytest

from lendsafe.config import PROJECT_ROOT
from lendsafe.errors import ConfigurationError
from lendsafe.train.finetune import TARGET_SETS
from lendsafe.train.sweep import SWEEP_PLOT, SWEEP_RECORD, SweepGrid, choose, sweep

GRID = PROJECT_ROOT / "data" / "sweep" / "lora.toml"


def test_the_shipped_grid_sweeps_rank_targets_and_learning_rate():
    grid = SweepGrid.read(GRID)
    settings = [grid.settings(run, PROJECT_ROOT / "data" / "sft", "smollm2-135m") for run in grid.runs]
    assert len(settings) >= 6
    assert {s.lora_r for s in settings} >= {4, 8, 16, 32}
    assert {s.lora_targets for s in settings} == set(TARGET_SETS)
    assert len({s.lr for s in settings}) >= 2
    assert {s.max_steps for s in settings} == {grid.budget["max_steps"]} and len({s.seed for s in settings}) == 1
    assert len({s.out for s in settings}) == len(settings)


@pytest.mark.parametrize("text, problem", [
    ("[budget]\nsteps = 3\n[[runs]]\nname = 'a'\n", "steps"),
    ("[[runs]]\nname = 'a'\nrank = 4\n", "rank"),
    ("[[runs]]\nname = 'a'\n[[runs]]\nname = 'a'\n", "unique name"),
    ("[defaults]\nbatch_size = 2\n", "at least one"),
])
def test_a_grid_with_unknown_keys_or_unnamed_runs_is_refused(tmp_path, text, problem):
    path = tmp_path / "grid.toml"
    path.write_text(text)
    with pytest.raises(ConfigurationError, match=problem):
        SweepGrid.read(path)


def run(name, first_pass, errors=0, loss=1.0, speed=100.0):
    return {"name": name, "first_pass": first_pass, "meaning_errors": errors, "validation_loss": loss,
            "train_tokens_per_s": speed}


def test_the_choice_ranks_first_pass_then_loss_then_meaning_errors_then_speed():
    runs = [run("slow", 9, speed=50), run("fast", 9, speed=90), run("wrong", 10, errors=2), run("right", 10),
            run("lossy", 10, loss=2.0)]
    assert choose(runs)["ranking"] == ["right", "wrong", "lossy", "fast", "slow"]
    assert choose([]) is None


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_a_tiny_sweep_writes_its_record_and_plot_and_resumes(tmp_path):
    grid_file = tmp_path / "grid.toml"
    grid_file.write_text(f"""work_dir = "{tmp_path / 'runs'}"
[budget]
max_steps = 1
validation_decisions = 2
validation_loss_examples = 1
[defaults]
batch_size = 1
limit = 2
max_length = 720
[[runs]]
name = "r4-all"
lora_r = 4
lora_alpha = 8
[[runs]]
name = "r4-attn"
lora_r = 4
lora_alpha = 8
lora_targets = "attention"
""")
    grid = SweepGrid.read(grid_file)
    record = sweep(grid, tmp_path / "record", PROJECT_ROOT / "data" / "sft")
    assert [r["name"] for r in record["runs"]] == ["r4-all", "r4-attn"]
    assert {r["training_step"] for r in record["runs"]} == {"FusedGraniteStep", "StockStep"}
    assert all(r["steps"] == 1 and r["texts"] == 2 and r["validation_loss"] > 0 for r in record["runs"])
    assert record["validation"]["evaluated"] == 2 and record["chosen"]["name"] in {"r4-all", "r4-attn"}
    assert (tmp_path / "record" / SWEEP_PLOT).stat().st_size > 0
    written = json.loads((tmp_path / "record" / SWEEP_RECORD).read_text())
    assert written["grid_sha256"] == grid.sha256 and set(written["data_sha256"]) == {"train.jsonl", "validation.jsonl"}
    assert sweep(grid, tmp_path / "record", PROJECT_ROOT / "data" / "sft")["runs"] == record["runs"]   # resumed: nothing re-run
