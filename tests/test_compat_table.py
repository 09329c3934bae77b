"""The compatibility matrix in analysis/: loading its CSVs, the pivots, the report section and the
docs table. Hand-made tables; no torch, no processes."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from analysis import compat_table, report
from analysis.load.compat_csv import find_compat, load_compat
from analysis.render import compat_section
from analysis.transform.compat_matrix import compat_matrix, compat_notes
from bench import rundir
from bench.errors import UsageError
from tests.test_analysis_inputs import make_run

URL = "https://github.com/pytorch/pytorch/issues/"


def row(variant, case, status, detail="", ratio=None, device="cpu", ranks=1, noisy=None):
    return {"variant": variant, "case": case, "status": status, "detail": detail, "step_time_ratio": ratio,
            "step_time_noisy": noisy if ratio is None else bool(noisy), "case_s": 0.5, "ranks": ranks, "device": device, "backend": "gloo" if ranks == 2 else "none",
            "torch": "2.14.1"}


ROWS = [
    row("nn", "channels-last", "pass", "output channels_last", 1.25),
    row("nn", "bf16-autocast", "pass", "output bfloat16", 0.9, noisy=True),
    row("nn", "fp32", "pass", "unbiased running_var"),
    row("sync", "fp32", "n/a", "CUDA only", ranks=2),
    row("sync", "channels-last", "n/a", "CUDA only", ranks=2),
    row("sync", "convert-subclass", "fail", "SyncBatchNormReLU became SyncBatchNorm"),
    row("nn", "my-own-case", "timeout", "no result within 3 s"),
]


def write(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    rundir.write_csv(path, rundir.COMPAT_COLUMNS, rows)
    return path


def test_matrix_puts_cases_in_the_listed_order_and_variants_as_first_seen():
    wide = compat_matrix(pd.DataFrame(ROWS))
    assert list(wide.columns) == ["case", "nn", "sync"]
    # COMPAT_CASES order (fp32 before channels-last, convert-subclass after), unknown cases last
    assert list(wide["case"]) == ["fp32", "bf16-autocast", "channels-last", "convert-subclass", "my-own-case"]
    assert wide.set_index("case").loc["channels-last"].tolist() == ["pass ×1.25", "n/a"]
    assert wide.set_index("case").loc["bf16-autocast", "nn"] == "pass ×0.90~"  # noisy times marked
    assert wide.set_index("case").loc["convert-subclass", "sync"] == "fail"
    assert pd.isna(wide.set_index("case").loc["convert-subclass", "nn"])  # not run: shown as a dash


def test_notes_list_what_did_not_pass_once_per_reason():
    notes = compat_notes(pd.DataFrame(ROWS))
    assert notes.to_dict("records") == [
        {"variant": "nn", "status": "timeout", "cases": "my-own-case", "detail": "no result within 3 s"},
        {"variant": "sync", "status": "n/a", "cases": "fp32, channels-last", "detail": "CUDA only"},
        {"variant": "sync", "status": "fail", "cases": "convert-subclass",
         "detail": "SyncBatchNormReLU became SyncBatchNorm"},
    ]


def test_loading_reads_ratios_as_numbers_and_skips_a_file_of_another_kind(tmp_path):
    good = write(tmp_path / "a" / rundir.COMPAT_CSV, ROWS)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / rundir.COMPAT_CSV).write_text("variant,verdict\nnn,ok\n")
    assert find_compat([tmp_path]) == [good, tmp_path / "b" / rundir.COMPAT_CSV]
    with pytest.warns(UserWarning, match=r"b/compat.csv: no backend, case, case_s"):
        df = load_compat(find_compat([tmp_path]))
    assert len(df) == len(ROWS) and list(df.columns) == list(rundir.COMPAT_COLUMNS)
    ratios = dict(zip(df["case"] + "/" + df["variant"], df["step_time_ratio"]))
    assert ratios["channels-last/nn"] == 1.25 and math.isnan(ratios["fp32/nn"])
    noisy = dict(zip(df["case"] + "/" + df["variant"], df["step_time_noisy"]))
    assert noisy["bf16-autocast/nn"] == True and noisy["channels-last/nn"] == False  # noqa: E712
    assert pd.isna(noisy["fp32/nn"])


def test_docs_table_links_each_case_to_its_issues_and_says_what_passing_means():
    md = compat_section.matrix_markdown(pd.DataFrame(ROWS))
    fp32_line = next(line for line in md.splitlines() if line.startswith("| `fp32`"))
    assert "| baseline |" in fp32_line and rundir.COMPAT_CASES["fp32"][0] in fp32_line
    cl_line = next(line for line in md.splitlines() if line.startswith("| `channels-last`"))
    assert f"[#50548]({URL}50548), [#88021]({URL}88021)" in cl_line and "| pass ×1.25 | n/a |" in cl_line
    assert "torch 2.14.1 on cpu; two-rank cells over gloo. 7 cells: 3 pass, 1 fail, 2 n/a, 1 timeout." in md
    assert "| sync | n/a | fp32, channels-last | CUDA only |" in md


def test_two_devices_give_two_matrices():
    md = compat_section.matrix_markdown(pd.DataFrame([*ROWS, row("sync", "fp32", "pass", device="cuda")]))
    assert "### torch 2.14.1, cpu" in md and "### torch 2.14.1, cuda" in md


def test_into_replaces_only_the_marked_block(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(f"# Title\n\nprose before\n\n{compat_section.BEGIN}\nold table\n{compat_section.END}\n\nafter\n")
    compat_section.write_into(page, "new table\n")
    assert page.read_text() == (f"# Title\n\nprose before\n\n{compat_section.BEGIN}\nnew table\n"
                                f"{compat_section.END}\n\nafter\n")
    page.write_text("no markers\n")
    with pytest.raises(UsageError, match="needs one"):
        compat_section.write_into(page, "x")


def test_render_command_without_rows_is_one_line_exit_2(tmp_path, capsys):
    assert compat_table.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("analysis.compat_table: error: no compatibility rows") and err.count("\n") == 1


def test_report_shows_a_matrix_found_beside_the_runs_or_named(tmp_path):
    make_run(tmp_path / "runs", "nn-run")
    report.build([str(tmp_path / "runs")], tmp_path / "plain")
    assert "Compatibility" not in (tmp_path / "plain" / "report.md").read_text()
    write(tmp_path / "runs" / rundir.COMPAT_CSV, ROWS[:2])
    named = write(tmp_path / "elsewhere.csv", [row("scratch", "fp32", "fail", "y differs")])
    report.build([str(tmp_path / "runs")], tmp_path / "out", compat=(str(named),))
    md, page = (tmp_path / "out" / "report.md").read_text(), (tmp_path / "out" / "report.html").read_text()
    assert "## Compatibility" in md and "<h2>Compatibility</h2>" in page
    assert "| `fp32` | baseline |" in md and "| scratch | fail | fp32 | y differs |" in md
    assert "| pass ×0.90~ |" in md  # read back from the CSV, noisy flag included
    assert f'<a href="{URL}50548">#50548</a>' in page


def test_report_names_a_missing_compat_file_in_one_line(tmp_path, capsys):
    make_run(tmp_path / "runs", "nn-run")
    with pytest.raises(SystemExit) as e:  # argparse's one line: --compat's type refuses it
        report.main([str(tmp_path / "runs"), "-o", str(tmp_path / "out"), "--compat", "nope.csv"])
    assert e.value.code == 2
    assert capsys.readouterr().err == ("analysis.report: error: argument --compat: nope.csv: no such file; "
                                       "name an existing file (see --help)\n")
