"""The report's sweep section: markdown, CSVs and plots, with Holm marks and power columns."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from analysis.render.mdtable import to_markdown
from analysis.render.sweep_section import CSV_NAMES, PNG_NAMES, sweep_section
from analysis.stats.power import parse_resolve
from analysis.stats.seed_groups import METRIC_SPECS
from tests.statsdata import T_TABLE, make_runs, scaling_runs


def test_to_markdown_formats_cells():
    df = pd.DataFrame({"variant": ["nn", "a|b"], "acc": [0.81234, math.nan], "n": [3, 4]})
    assert to_markdown(df, ".2f") == ("| variant | acc | n |\n| --- | ---: | ---: |\n"
                                      "| nn | 0.81 | 3 |\n| a\\|b | – | 4 |")


def test_sweep_section_writes_csvs_and_plots(tmp_path):
    runs = pd.concat([
        scaling_runs(),
        make_runs({"variant": "scratch", "examples_per_s": [590.0, 600.0, 610.0],
                   "test_acc": [0.80, 0.82, 0.84]}),
        make_runs({"variant": "nn", "status": "failed", "test_acc": 0.1}),
    ], ignore_index=True)
    md = sweep_section(runs, tmp_path)
    for name in list(CSV_NAMES.values()) + list(PNG_NAMES.values()):
        assert (tmp_path / name).stat().st_size > 0, name
    groups = pd.read_csv(tmp_path / CSV_NAMES["groups"])
    assert len(groups) == 5
    scratch = groups[groups["variant"] == "scratch"].iloc[0]
    assert scratch["test_acc_mean"] == pytest.approx(0.82)
    # accuracy's interval is on the logit scale: expit(logit m + t·(s/√n)/(m(1 − m)))
    upper = math.log(0.82 / 0.18) + T_TABLE[2] * (0.02 / math.sqrt(3)) / (0.82 * 0.18)
    assert scratch["test_acc_ci95_high"] == pytest.approx(1 / (1 + math.exp(-upper)))
    nn1 = groups[(groups["variant"] == "nn") & (groups["world_size"] == 1)].iloc[0]
    assert nn1["n_seeds"] == 3 and nn1["n_incomplete"] == 1
    scaling = pd.read_csv(tmp_path / CSV_NAMES["scaling"])
    w4 = scaling[(scaling["variant"] == "nn") & (scaling["world_size"] == 4)].iloc[0]
    assert w4["speedup"] == pytest.approx(3.6) and w4["efficiency"] == pytest.approx(0.9)
    pw = pd.read_csv(tmp_path / CSV_NAMES["pairwise"])
    eps = pw[(pw["metric"] == "examples_per_s") & (pw["world_size"] == 1)].iloc[0]
    assert (eps["variant_a"], eps["variant_b"]) == ("scratch", "nn")
    assert eps["estimate"] == pytest.approx(1000 / 600)
    assert eps["verdict"].startswith("nn faster: 1.67× [")
    acc = pd.read_csv(tmp_path / CSV_NAMES["accuracy"])
    assert set(acc["effective_bn_batch"]) == {64, 32, 128}
    assert "Student-t" in md and "Welch" in md and "delta-method" in md
    assert "runs excluded (status not complete): 1." in md and "nn faster: 1.67×" in md
    assert f"]({PNG_NAMES['scaling']})" in md
    assert "no world size 1 baseline" in md


def test_sweep_section_empty_when_nothing_to_say(tmp_path):
    runs = make_runs({"variant": "scratch"}, {"variant": "nn"})
    assert sweep_section(runs, tmp_path / "out") == ""
    assert not (tmp_path / "out").exists()


def two_seed_sweep() -> pd.DataFrame:
    """Every configuration on two seeds with a wide spread: where raw t intervals left their range."""
    common = {"train_loss": [0.05, 1.9], "peak_mem_bytes": [1e6, 8e8], "step_ms_p90": [2.0, 60.0],
              "examples_per_s_per_rank": [100.0, 5000.0]}
    return make_runs(
        {"variant": "scratch", "test_acc": [0.10, 0.97], "train_acc": [0.5, 1.0], "examples_per_s": [100.0, 5000.0],
         "step_ms_p50": [1.0, 50.0], **common},
        {"variant": "nn", "test_acc": [0.60, 0.99], "train_acc": [0.9, 0.2], "examples_per_s": [300.0, 9000.0],
         "step_ms_p50": [0.5, 20.0], **common},
        {"variant": "nn", "world_size": 2, "test_acc": [0.02, 0.9], "train_acc": [0.9, 0.2],
         "examples_per_s": [50.0, 20000.0], "step_ms_p50": [0.5, 20.0], **common},
    )


def test_no_interval_in_a_two_seed_report_leaves_its_metric_range(tmp_path):
    sweep_section(two_seed_sweep(), tmp_path)
    groups = pd.read_csv(tmp_path / CSV_NAMES["groups"])
    for metric, spec in METRIC_SPECS.items():
        lo, hi, mean = groups[f"{metric}_ci95_low"], groups[f"{metric}_ci95_high"], groups[f"{metric}_mean"]
        assert (lo > 0).all() and (lo <= mean).all() and (mean <= hi).all(), metric
        if spec.space == "proportion":
            assert (hi < 1).all(), metric
    pw = pd.read_csv(tmp_path / CSV_NAMES["pairwise"])
    ratio = pw[pw["comparison"] == "ratio"]
    assert len(ratio) and (ratio["ci95_low"] > 0).all()
    acc = pw[pw["metric"].isin(["test_acc", "train_acc"])]
    assert (acc["ci95_low"] >= -1).all() and (acc["ci95_high"] <= 1).all() and (acc["ci95_low"] == -1).any()
    scaling = pd.read_csv(tmp_path / CSV_NAMES["scaling"]).dropna(subset=["speedup_ci95_low"])
    assert len(scaling) and (scaling["speedup_ci95_low"] > 0).all() and (scaling["efficiency_ci95_low"] > 0).all()
    by_batch = pd.read_csv(tmp_path / CSV_NAMES["accuracy"])
    assert (by_batch["test_acc_ci95_low"] > 0).all() and (by_batch["test_acc_ci95_high"] < 1).all()


def test_report_counts_its_comparisons_and_marks_holm_survivors(tmp_path):
    specs = []
    for batch, gap in ((32, 0.10), (64, 0.06), (128, 0.0)):
        specs += [{"variant": "scratch", "per_rank_batch": batch, "test_acc": [0.80, 0.82, 0.84]},
                  {"variant": "nn", "per_rank_batch": batch, "test_acc": [0.80 + gap, 0.82 + gap, 0.84 + gap]}]
    md = sweep_section(make_runs(*specs), tmp_path, resolve=(parse_resolve("1pt"),))
    pw = pd.read_csv(tmp_path / CSV_NAMES["pairwise"])
    # Shown: test_acc, examples_per_s and step_ms_p50 for 3 batches. The default throughput and step
    # times are equal across seeds (no spread), so every one of the 9 has a p value.
    assert "**9 comparisons**" in md
    assert pw.loc[pw["metric"].isin(["test_acc", "examples_per_s", "step_ms_p50"]), "holm_p"].notna().sum() == 9
    assert pw.loc[pw["metric"] == "train_acc", "holm_p"].isna().all()  # computed, not shown: not in the family
    acc = pw[pw["metric"] == "test_acc"].set_index("per_rank_batch")
    se = math.sqrt(2 * 0.0004 / 3)
    p64 = 2 * scipy_stats.t.sf(0.06 / se, 4)
    assert acc.loc[64, "p_value"] == pytest.approx(p64, rel=1e-6) and p64 < 0.05
    assert not acc.loc[64, "holm_significant"] and acc.loc[32, "holm_significant"]
    assert "survives Holm" in md and "| yes (p̃" in md and "| no (p̃" in md
    assert "smallest resolvable" in md and "seeds needed per variant" in md and " for 1pt |" in md


def test_one_seed_runs_with_step_times_get_within_run_comparisons(tmp_path):
    runs = make_runs({"variant": "scratch", "step_ms_p50": 20.0}, {"variant": "nn", "step_ms_p50": 10.0})
    rng = np.random.default_rng(4)
    steps = pd.DataFrame([{"run": run, "rank": 0, "epoch": 1, "step": i, "step_ms": t}
                          for run, centre in (("scratch-w1-b64-s0", 20.0), ("nn-w1-b64-s0", 10.0))
                          for i, t in enumerate(centre + rng.normal(0, 0.3, 120))])
    assert sweep_section(runs, tmp_path / "none") == ""  # without step times: nothing to compare
    md = sweep_section(runs, tmp_path / "out", steps=steps)
    assert "nn faster (p50 step): 2.0" in md and "(within-run timing only)" in md
    assert "**0 comparisons**" in md
    row = [line for line in md.splitlines() if line.startswith("| nn |") or line.startswith("| scratch |")]
    assert any("within run" in line for line in row)  # the configuration table's p50 cell


def test_accuracy_not_measured_reads_n_a_and_draws_nothing(tmp_path):
    """Synthetic data has random labels, so its runs carry no test accuracy: the sweep says n/a where
    accuracy would be, its comparison says 'not measured' (not 'too few seeds'), and no accuracy
    figure or accuracy-vs-batch section is drawn from no data."""
    runs = make_runs({"variant": "scratch", "examples_per_s": [590.0, 600.0, 610.0], "test_acc": math.nan},
                     {"variant": "nn", "examples_per_s": [990.0, 1000.0, 1010.0], "test_acc": math.nan})
    md = sweep_section(runs, tmp_path)
    configurations = md[md.index("### Configurations"):md.index("![test accuracy and examples/s")]
    rows = [r for r in configurations.splitlines() if r.startswith("| scratch") or r.startswith("| nn")]
    assert len(rows) == 2 and all("| n/a |" in r for r in rows), rows
    pw = pd.read_csv(tmp_path / CSV_NAMES["pairwise"])
    assert pw.loc[pw["metric"] == "test_acc", "verdict"].tolist() == ["not measured in these runs"]
    assert pw.loc[pw["metric"] == "examples_per_s", "verdict"].str.startswith("nn faster").all()
    assert "Test accuracy vs batch" not in md and not (tmp_path / PNG_NAMES["accuracy"]).exists()
