"""The report of a real small sweep, opened in headless Chromium: it loads without errors.

A tiny scenario (150 agents, 3 days, 3 seeds, two arms) is swept into a real SQLite file
and its report rendered; Chromium then opens ``report.html`` from disk and the test
checks that every image decodes, that the browser logged no error and that the summary
is visible at the top of the page. Needs Debian's ``chromium`` and ``chromium-driver``
(``bash .ci/run`` installs them).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from sim.engine.metrics import METRIC_NAMES
from sim.store.database import open_store
from sim.sweep.intervals import metric_bounds
from sim.sweep.report import load_metrics
from sim.sweep.runner import run_scenario_file
from tests.browser import headless_chromium, wait_for

TINY = """
name = "tiny_browser"
description = "Does friction lower the negative share in a tiny population?"
horizon = 3.0
seeds = 3
[population]
n_agents = 150
[[arms]]
name = "baseline"
[[arms]]
name = "friction"
interventions = [{ type = "friction", start = 1.0, share = 0.9 }]
"""


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> tuple[Path, Path]:
    """A real sweep into a SQLite file and its report: (database, report.html)."""
    tmp = tmp_path_factory.mktemp("browser")
    scenario = tmp / "tiny_browser.toml"
    scenario.write_text(TINY)
    db = tmp / "sweep.db"
    outcome = run_scenario_file(scenario, str(db), workers=1, out_dir=tmp / "report",
                                progress=False)
    return db, outcome.report.with_name("report.html")


def test_real_metric_values_lie_inside_their_declared_bounds(sweep):
    db, _ = sweep
    store = open_store(str(db))
    try:
        frame = load_metrics(store, "tiny_browser")
    finally:
        store.dispose()
    assert set(frame["name"]) == set(METRIC_NAMES)
    assert frame["run_id"].nunique() == 6
    for name, values in frame.groupby("name")["value"]:
        lo, hi = metric_bounds(str(name))
        assert values.min() >= lo and values.max() <= hi, name
        assert math.isfinite(lo) or math.isfinite(hi), name


@pytest.fixture()
def browser(tmp_path):
    with headless_chromium(tmp_path / "chromium", "1280,900", console_log=True) as driver:
        yield driver


def test_report_html_opens_in_chromium_without_errors(sweep, browser):
    _, html_path = sweep
    n_tags = html_path.read_text().count("<img ")
    # one forest plot, then a time series and a final-value plot per metric
    assert n_tags == 1 + 2 * len(METRIC_NAMES)
    browser.get(html_path.resolve().as_uri())
    wait_for(lambda: browser.execute_script("return document.readyState") == "complete",
          "the page to load")
    images = wait_for(lambda: (lambda imgs: imgs if imgs and all(i["complete"] for i in imgs)
                            else None)(browser.execute_script(
                                "return Array.from(document.images).map(i => ({alt: i.alt, "
                                "complete: i.complete, w: i.naturalWidth, h: i.naturalHeight}))")),
                   "every image to finish loading")
    assert len(images) == n_tags
    broken = [i["alt"] for i in images if not (i["w"] > 0 and i["h"] > 0)]
    assert broken == [], f"images that did not decode: {broken}"
    assert images[0]["alt"] == "paired effects against baseline"
    assert images[0]["w"] == 1000  # the forest plot: 10 in at 100 dpi

    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], f"console errors: {errors}"

    summary = browser.find_element(By.ID, "summary")
    assert summary.is_displayed()
    text = summary.text
    assert text.startswith("Summary")
    assert "friction against baseline (3 paired seeds)" in text
    assert "Holm family:" in text and "= <" not in text
    # the answer first: the summary starts within the first screen, above every image
    top = browser.execute_script(
        "return document.getElementById('summary').getBoundingClientRect().top")
    first_img = browser.execute_script(
        "return document.images[0].getBoundingClientRect().top")
    height = browser.execute_script("return window.innerHeight")
    assert 0 <= top < height and top < first_img
    assert summary.size["height"] > 50
