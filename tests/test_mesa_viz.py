"""Mesa's browser visualisation: the Solara page served, loaded in headless Chromium, stepped.

Needs Debian's ``chromium`` and ``chromium-driver`` (``bash .ci/run`` installs them).
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By

from sim.engine.mesa_tools import MesaSocialModel
from sim.engine.viz import network_sample
from tests.browser import headless_chromium, wait_for

ROOT = Path(__file__).resolve().parent.parent
#: Colour channels (R, G, B) of the plots' colours: tab:red, tab:green and tab:blue, drawn
#: opaque or half-transparent on white.
RED, GREEN, BLUE = 0, 1, 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, server: subprocess.Popen, log: Path, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        assert server.poll() is None, f"the Solara server exited:\n{log.read_text()}"
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"the Solara server did not answer in {timeout} s:\n{log.read_text()}")


@pytest.fixture()
def server(tmp_path):
    port = _free_port()
    log = tmp_path / "solara.log"
    env = {**os.environ, "SIGNSIM_VIZ_AGENTS": "150", "SIGNSIM_VIZ_HORIZON": "10",
           "SIGNSIM_VIZ_SEED": "3"}
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "solara", "run", "sim.engine.viz", "--port", str(port),
             "--host", "127.0.0.1", "--production", "--no-open"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/"
        _wait_http(url, proc, log)
        yield url, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture()
def browser(tmp_path):
    with headless_chromium(tmp_path / "chromium", "1400,1100") as driver:
        yield driver


def _plots(driver) -> list[np.ndarray]:
    """The page's three plots as RGB arrays, once all are decoded images."""
    def grab():
        try:
            imgs = [im for im in driver.find_elements(By.TAG_NAME, "img")
                    if im.get_attribute("naturalWidth") not in (None, "0")
                    and (im.get_attribute("src") or "").startswith(("blob:", "data:image/png"))]
            if len(imgs) != 3:
                return None
            return [matplotlib.image.imread(io.BytesIO(im.screenshot_as_png))[..., :3]
                    for im in imgs]
        except StaleElementReferenceException:
            return None

    return wait_for(grab, "three rendered plots")


def _pixels(image: np.ndarray, channel: int, margin: float = 0.12) -> int:
    """Pixels whose ``channel`` exceeds both other channels by ``margin`` (0..1 scale)."""
    others = np.delete(image, channel, axis=-1)
    return int(np.all(image[..., channel:channel + 1] - others > margin, axis=-1).sum())


def _body(driver) -> str:
    return str(driver.find_element(By.TAG_NAME, "body").text)


def test_page_renders_the_three_plots_and_steps_without_errors(server, browser):
    url, log = server
    browser.get(url)
    wait_for(lambda: "Step: 0" in _body(browser), "the page (Step: 0)")
    hist, share, network = _plots(browser)
    assert _pixels(hist, BLUE) > 500  # the opinion histogram has bars
    share_before = _pixels(share, RED)  # only the legend's line so far
    assert _pixels(network, GREEN) == 0  # no tie yet at day 0

    step = next(b for b in browser.find_elements(By.TAG_NAME, "button") if b.text == "STEP")
    for k in (1, 2, 3):
        step.click()
        wait_for(lambda k=k: f"Step: {k}" in _body(browser), f"Step: {k}")
    time.sleep(1.0)  # let the last redraw reach the browser
    hist, share, network = _plots(browser)
    assert _pixels(share, RED) > share_before + 100  # the negative share is drawn over ticks
    assert _pixels(network, GREEN) > 50  # positive ties of the sample
    assert _pixels(network, RED) > 10  # negative ties of the sample
    text = _body(browser)
    for bad in ("Error", "error", "Traceback", "Exception"):
        assert bad not in text, text
    reset = next(b for b in browser.find_elements(By.TAG_NAME, "button") if b.text == "RESET")
    reset.click()  # Mesa rebuilds the model from the page's parameters
    wait_for(lambda: "Step: 0" in _body(browser), "Step: 0 after Reset")
    assert _pixels(_plots(browser)[2], GREEN) == 0
    server_log = log.read_text()
    assert "Traceback" not in server_log and "Could not load" not in server_log, server_log


def test_network_sample_is_fixed_and_leaves_the_run_alone():
    watched = MesaSocialModel(n_agents=120, horizon=4.0, seed=5, collect_agents=False)
    plain = MesaSocialModel(n_agents=120, horizon=4.0, seed=5, collect_agents=False)
    samples = []
    while watched.running:
        watched.step()
        plain.step()
        sample, src, dst, sign = network_sample(watched)
        samples.append(sample)
        assert np.isin(src, sample).all() and (dst >= 0).all() and set(np.unique(sign)) <= {-1, 1}
        # Each drawn tie is one the agent remembers.
        for a, b, s in zip(src.tolist(), dst.tolist(), sign.tolist(), strict=True):
            row = watched.net.tie_partner[a] == b
            assert (watched.net.tie_sign[a][row] == s).any()
    assert all(np.array_equal(samples[0], s) for s in samples)
    assert len(samples[0]) == 40 and len(src) > 0
    a = watched.datacollector.get_model_vars_dataframe()
    b = plain.datacollector.get_model_vars_dataframe()
    assert a.equals(b)
