"""The report's "Not run" section: variants a launcher skipped, read from <out>/skipped.csv."""
from __future__ import annotations

import html

import pytest

from analysis import report
from analysis.load.run_dirs import load_skipped
from bench import rundir
from tests.test_analysis_inputs import make_run

SKIPS = [("sync", "no CUDA device on this test machine"), ("scratch-sync", "asked to leave it out | for now")]


def build(tmp_path, skipped):
    """Report over one hand-made run, with `skipped` recorded beside it (None: no record at all)."""
    make_run(tmp_path / "runs", "nn-run", variant="nn")
    if skipped is not None:
        rundir.write_skipped(tmp_path / "runs", skipped)
    report.build([str(tmp_path / "runs")], tmp_path / "report")
    return (tmp_path / "report" / "report.md").read_text(), (tmp_path / "report" / "report.html").read_text()


def test_report_lists_each_skipped_variant_with_its_reason(tmp_path):
    md, page = build(tmp_path, SKIPS)
    assert "## Not run" in md and "<h2>Not run</h2>" in page
    for variant, reason in SKIPS:
        assert f"| {variant} | {reason.replace('|', chr(92) + '|')} |" in md
        assert f"<td>{variant}</td>" in page and f"<td>{html.escape(reason)}</td>" in page


@pytest.mark.parametrize("skipped", [None, []], ids=["no record", "empty record"])
def test_no_not_run_section_when_nothing_was_skipped(tmp_path, skipped):
    md, page = build(tmp_path, skipped)
    assert "Not run" not in md and "Not run" not in page
    assert "## Runs" in md  # the report itself was built


def test_skip_records_from_several_folders_say_where_they_came_from(tmp_path):
    for name, (variant, reason) in zip(("a", "b"), SKIPS):
        rundir.write_skipped(tmp_path / name, [(variant, reason)])
    skipped = load_skipped([tmp_path])
    assert sorted(skipped.itertuples(index=False, name=None)) == sorted(
        (v, r, str(tmp_path / n)) for n, (v, r) in zip(("a", "b"), SKIPS))


def test_unreadable_skip_record_is_skipped_with_its_file_named(tmp_path):
    (tmp_path / rundir.SKIPPED).write_text("name,why\nsync,gone\n")  # not the format's columns
    with pytest.warns(UserWarning, match=rundir.SKIPPED):
        skipped = load_skipped([tmp_path])
    assert skipped.empty and list(skipped.columns) == [*rundir.SKIPPED_COLUMNS, "path"]
