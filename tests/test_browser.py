"""The report and TensorBoard as a reader sees them: a real headless Chromium (tests/browser.py)
over real 2-rank runs of two variants (conftest.two_variant_runs).

Expected values come from the run directories on disk, never from the page under test.
"""
from __future__ import annotations

import re

import pytest

from analysis import report
from bench import rundir
from tests.browser import DEEP_TEXT_JS, OPT_OUT, PAGE_WIDTH, full_page_screenshot, start_chromium
from tests.viewer import Viewer, port_is_free

WAIT_S = 60  # a page's scripts fetching and drawing; more is a hang


def runs_by_variant(folder) -> dict:
    """variant → run directory, read from each run's config.json."""
    return {rundir.read_json(d / rundir.CONFIG)["variant"]: d for d in rundir.find_run_dirs([folder])}

IMAGES_JS = "return Array.from(document.images, i => [i.alt, i.complete ? i.naturalWidth : 0]);"
SECTION_TEXT_JS = """
const h2 = document.querySelector("h2"); const parts = [];
for (let n = h2.nextElementSibling; n && n.tagName !== "H2"; n = n.nextElementSibling) parts.push(n.innerText);
return parts.join("\\n");
"""
# Table cells whose text takes more than one line: line boxes whose tops differ by over half a line.
WRAPPED_CELLS_JS = """
const wrapped = [];
for (const cell of document.querySelectorAll("td, th")) {
  const range = document.createRange(); range.selectNodeContents(cell);
  const tops = Array.from(range.getClientRects()).filter(r => r.width > 0).map(r => r.top).sort((a, b) => a - b);
  const half = 0.6 * parseFloat(getComputedStyle(cell).fontSize);
  if (tops.some((t, i) => i > 0 && t - tops[i - 1] > half)) wrapped.push(cell.innerText);
}
return wrapped;
"""


@pytest.fixture(scope="session")
def chromium():
    """One browser for the session; set up before the runs, so a missing browser fails (or an
    opted-out one skips) before any training starts."""
    driver = start_chromium()
    yield driver
    driver.quit()


def wait_for(driver, what: str, condition):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, WAIT_S, poll_frequency=0.5).until(lambda d: condition(d))
    except TimeoutException:
        pytest.fail(f"{what}: not seen within {WAIT_S} s")


def test_chromium_shows_the_report_whole_with_findings_first(chromium, two_variant_runs, tmp_path):
    variants = runs_by_variant(two_variant_runs)
    assert sorted(variants) == ["nn", "scratch-sync"]
    assert report.main([str(two_variant_runs), "-o", str(tmp_path / "report")]) == 0
    md = (tmp_path / "report" / "report.md").read_text()
    chromium.set_window_size(PAGE_WIDTH, 1000)
    chromium.get((tmp_path / "report" / "report.html").as_uri())

    images = chromium.execute_script(IMAGES_JS)
    assert len(images) == len(re.findall(r"!\[[^\]]*\]\([^)]+\.png\)", md))
    assert {f"one step of {v}" for v in variants} <= {alt for alt, _ in images}  # profiled runs
    assert [alt for alt, width in images if not width > 0] == []

    from selenium.webdriver.common.by import By

    headings = [h.text for h in chromium.find_elements(By.TAG_NAME, "h2")]
    assert headings[0] == "Findings" and "Kernels and GPU time" in headings
    findings = chromium.execute_script(SECTION_TEXT_JS)
    assert "scratch-sync against nn (one run each: no interval" in findings  # "over seeds)" with steps
    assert re.search(r"Fastest: (nn|scratch-sync), [\d,.]+ examples/s", findings)

    assert chromium.execute_script(WRAPPED_CELLS_JS) == []
    assert chromium.execute_script("return document.documentElement.scrollWidth") <= PAGE_WIDTH
    full_page_screenshot(chromium, tmp_path / "report.png")
    severe = [e["message"] for e in chromium.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == []


def test_chromium_shows_the_at_scale_section_whole(chromium, two_variant_runs, data_dir, tmp_path):
    """The report's "At scale (predicted)" section (--preset): a world-size-1 nn run at the 2-rank runs'
    per-rank batch is the model's start, the 2-rank nn run its check; the section's tables fit the
    page and its plot loads."""
    import shutil

    from selenium.webdriver.common.by import By

    from tests.procs import python_m

    runs = tmp_path / "runs"
    shutil.copytree(runs_by_variant(two_variant_runs)["nn"], runs / "nn-ws2")
    done = python_m("bench.train", "--variant", "nn", "--epochs", "1", "--batch-size", "32", "--limit-train",
                    "1024", "--limit-test", "500", "--no-profile", "--data-dir", data_dir, "--out", runs)
    assert done.returncode == 0, done.stderr[-2000:]
    assert report.main([str(runs), "-o", str(tmp_path / "report"), "--preset", "dgx-h100-ndr"]) == 0
    chromium.set_window_size(PAGE_WIDTH, 1000)
    chromium.get((tmp_path / "report" / "report.html").as_uri())
    headings = [h.text for h in chromium.find_elements(By.TAG_NAME, "h2")]
    assert headings[-1] == "At scale (predicted)", headings
    images = dict(chromium.execute_script(IMAGES_JS))
    assert [w for alt, w in images.items() if "predicted" in alt.lower()] and all(w > 0 for w in images.values())
    assert chromium.execute_script(WRAPPED_CELLS_JS) == []
    assert chromium.execute_script("return document.documentElement.scrollWidth") <= PAGE_WIDTH
    full_page_screenshot(chromium, tmp_path / "report_at_scale.png")


def _select_after(driver, label: str):
    """The Material-UI select that follows the profiler sidebar's `label` ('Runs', 'Workers')."""
    from selenium.webdriver.common.by import By

    return driver.find_element(
        By.XPATH, f"//*[normalize-space(text())='{label}']/following::*[@aria-haspopup='listbox'][1]")


def _option_texts(driver) -> list[str] | None:
    from selenium.webdriver.common.by import By
    texts = [o.text for o in driver.find_elements(By.CSS_SELECTOR, "[role=listbox] [role=option]")]
    return texts if texts and all(texts) else None


def test_chromium_shows_tensorboard_with_the_run_and_both_ranks(chromium, two_variant_runs, tmp_path):
    run_dir = runs_by_variant(two_variant_runs)["nn"]  # one run is enough, and half the parsing
    ranks = sorted(p.name.split(".")[0] for p in (run_dir / rundir.TRACES).glob("*.pt.trace.json.gz"))
    assert ranks == ["rank0", "rank1"]
    viewer = Viewer([run_dir], tmp_path)
    try:
        viewer.wait_for_runs(1)
        chromium.set_window_size(PAGE_WIDTH, 1000)
        chromium.get(viewer.url + "#scalars")
        wait_for(chromium, f"run {run_dir.name} in the scalars dashboard",
                 lambda d: run_dir.name in d.execute_script(DEEP_TEXT_JS))
        chromium.save_screenshot(str(tmp_path / "tensorboard_scalars.png"))

        from selenium.webdriver.common.by import By

        chromium.get(viewer.url + "#pytorch_profiler")
        frame = wait_for(chromium, "the profiler plugin's frame", lambda d: d.find_elements(By.TAG_NAME, "iframe"))
        chromium.switch_to.frame(frame[0])
        wait_for(chromium, f"run {run_dir.name} chosen in the profiler",
                 lambda d: _select_after(d, "Runs").text == run_dir.name)
        workers = wait_for(chromium, "the workers list",
                           lambda d: _select_after(d, "Workers").text and _select_after(d, "Workers"))
        workers.click()
        # The listbox opens before its options' text is drawn: wait for every option to have text.
        offered = wait_for(chromium, "the workers offered", lambda d: _option_texts(d))
        chromium.save_screenshot(str(tmp_path / "tensorboard_profiler.png"))
        assert offered == ranks
    finally:
        chromium.switch_to.default_content()
        viewer.stop()
    assert port_is_free(viewer.port)


def test_a_missing_browser_fails_in_one_line(monkeypatch, tmp_path):
    monkeypatch.delenv(OPT_OUT, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # neither chromium nor chromedriver here
    with pytest.raises(pytest.fail.Exception) as failed:
        start_chromium()
    message = str(failed.value)
    assert message.startswith("browser tests: chromium and chromedriver not found on PATH;")
    assert f"{OPT_OUT}=1" in message and "\n" not in message


def test_opting_out_skips_with_the_reason(monkeypatch):
    monkeypatch.setenv(OPT_OUT, "1")
    with pytest.raises(pytest.skip.Exception, match=f"opted out \\({OPT_OUT}=1\\)"):
        start_chromium()
