"""End to end in a real browser: Debian chromium (driven by playwright) draws a digit on the try-it page of a
real operator node (in-process, honest, real onnxruntime) on a real anvil mining a block a second, and watches
it go requested -> attested -> finalized; then the dashboard shows the request finalized and the model."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from web3 import Web3

from oracle.api.dashboard import dashboard_router
from oracle.app import start_api
from oracle.chain.client import OracleClient
from oracle.chain.deploy import DeployParams, deploy_system
from oracle.chain.devnet import DEV_MNEMONIC, Devnet
from oracle.settings import NodeSettings
from oracle.worker.node import Node

from .conftest import SAMPLES, STAKE, register_digits, token_model

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WINDOW = 3
OPERATOR_INDEX = 5
TRY_INDEX = 3
CHEATER_INDEX = 6
CHALLENGER_INDEX = 4

Account.enable_unaudited_hdwallet_features()

#: Test-side probe (not part of the page): records every text the status line shows, in order.
STATUS_PROBE = """
window.__statusLog = [];
document.addEventListener("DOMContentLoaded", () => {
  const s = document.getElementById("status");
  if (!s) return;
  new MutationObserver(() => {
    const t = s.textContent;
    if (window.__statusLog[window.__statusLog.length - 1] !== t) window.__statusLog.push(t);
  }).observe(s, { childList: true, characterData: true, subtree: true });
});
"""


@dataclass
class Stack:
    base: str
    client: OracleClient
    exact_id: int
    operator: str
    requester: str
    node: Node
    cheater: str  # a second staked operator, driven by hand to post a wrong result
    challenger: str
    token_models: dict[int, str]  # model id -> the fee the models table must show (one token has no metadata)


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's chromium driven by playwright; a missing browser fails the test (CI must install it)."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"Debian chromium is missing at {CHROMIUM}: the browser test needs it. Install it with "
            "`apt-get install chromium` (CI does this in .ci/run); playwright's own browser download "
            "is not used."
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("dashboard-e2e")
    with Devnet() as devnet:
        w3 = Web3(Web3.HTTPProvider(devnet.url, request_kwargs={"timeout": 60}))
        acct = w3.eth.accounts
        # Assignment off: the cheater answers on demand and the worker answers the rest at once.
        dep = deploy_system(
            w3, acct[0], DeployParams(challenge_window=WINDOW, request_timeout=600, unbonding_period=3600,
                                      exclusive_period=0)
        )
        client = OracleClient(w3, dep.oracle)
        exact_id = register_digits(client, acct[0])
        _, tst_model = token_model(client, acct[0], "TestToken", 25 * 10**17)
        bare, bare_model = token_model(client, acct[0], "NoReturnToken", 7)
        token_models = {tst_model: "2.5 TST", bare_model: f"7 {bare[:6]}…{bare[-4:]}"}
        client.stake(acct[OPERATOR_INDEX], STAKE)
        client.stake(acct[CHEATER_INDEX], STAKE)
        # From here on a block a second, like a real chain: windows close by the clock, not by test RPCs.
        w3.provider.make_request("evm_setIntervalMining", [1])  # type: ignore[arg-type]

        operator_key = Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{OPERATOR_INDEX}")
        settings = NodeSettings.load(
            None,
            rpc_urls=[devnet.url],
            oracle_address=dep.oracle,
            db_path=tmp / "node.sqlite3",
            model_dir=tmp / "models",
            poll_interval=0.05,
            api_port=0,
            confirmations=0,
            start_block=dep.block,
            private_key=operator_key.key.hex(),
            min_time_left=5,
            stuck_after=10.0,
        )
        node = Node.from_settings(settings)
        node.setup()
        errors: list[BaseException] = []

        def run() -> None:
            try:
                node.run()
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                errors.append(exc)

        thread = threading.Thread(target=run, name="dashboard-e2e-node", daemon=True)
        thread.start()
        try:
            # The dashboard reads through its own connection, as a separate process would.
            reader = OracleClient(
                Web3(Web3.HTTPProvider(devnet.url, request_kwargs={"timeout": 60})), dep.oracle
            )
            router = dashboard_router(
                reader, start_block=dep.block, try_signer=acct[TRY_INDEX], try_model_id=exact_id
            )
            port = start_api(node, port=0, extra_routers=[router])
            yield Stack(
                f"http://127.0.0.1:{port}",
                client,
                exact_id,
                operator_key.address,
                acct[TRY_INDEX],
                node,
                acct[CHEATER_INDEX],
                acct[CHALLENGER_INDEX],
                token_models,
            )
        finally:
            node.stop()
            thread.join(timeout=20)
            node.cleanup()
        assert not errors, errors


def new_page(browser: Any, problems: list[str]) -> Any:
    """A page that reports script errors, console errors and failed HTTP requests into ``problems``."""
    page = browser.new_page()
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on(
        "console",
        lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
    )
    page.on("response", lambda r: problems.append(f"HTTP {r.status} {r.url}") if r.status >= 400 else None)
    page.add_init_script(STATUS_PROBE)
    return page


def draw(page: Any, pixels: list[int]) -> None:
    """Draws like a person would: pick each ink level, click the cells that have it."""
    for ink in sorted(set(pixels) - {0}):
        page.get_by_test_id("brush").fill(str(ink))
        for i, v in enumerate(pixels):
            if v == ink:
                page.get_by_test_id(f"cell-{i}").click()


def test_draw_submit_and_watch_it_finalize_then_see_it_on_the_dashboard(stack: Stack) -> None:
    with chromium() as browser:
        draw_submit_and_watch(browser, stack)


def draw_submit_and_watch(browser: Any, stack: Stack) -> None:
    from playwright.sync_api import expect

    sample = SAMPLES[0]
    pixels = list(bytes.fromhex(sample["input_hex"][2:]))
    label = str(sample["expected_output"][0])
    problems: list[str] = []
    page = new_page(browser, problems)
    page.goto(f"{stack.base}/try")
    expect(page.get_by_test_id("try-info")).to_contain_text(f"model #{stack.exact_id}")
    submit = page.get_by_test_id("submit")
    expect(submit).to_be_disabled()  # nothing drawn yet

    draw(page, pixels)
    drawn = page.locator("#grid button").evaluate_all("bs => bs.map(b => Number(b.dataset.value))")
    assert drawn == pixels
    # Clicking a cell again with the same ink clears it (toggle), and clicking again restores it.
    last = max(i for i, v in enumerate(pixels) if v)
    page.get_by_test_id("brush").fill(str(pixels[last]))
    page.get_by_test_id(f"cell-{last}").click()
    expect(page.get_by_test_id(f"cell-{last}")).to_have_attribute("data-value", "0")
    page.get_by_test_id(f"cell-{last}").click()
    expect(page.get_by_test_id(f"cell-{last}")).to_have_attribute("data-value", str(pixels[last]))

    started = time.monotonic()
    expect(submit).to_be_enabled()
    submit.click()
    status = page.get_by_test_id("try-status")
    expect(status).to_contain_text("requested", timeout=15_000)
    expect(status).to_contain_text("attested", timeout=20_000)
    expect(page.get_by_test_id("try-countdown")).to_contain_text("challenge window")
    expect(status).to_have_text(f"finalized: the model read {label}", timeout=30_000)
    expect(page.get_by_test_id("result-digit")).to_have_text(label)
    expect(page.get_by_test_id("stage-finalized")).to_have_attribute("data-state", "done")
    assert time.monotonic() - started < 30

    # The status line went through every stage, in order.
    log: list[str] = page.evaluate("window.__statusLog")
    firsts = [
        next(i for i, t in enumerate(log) if t.startswith(stage))
        for stage in ("requested", "attested", "finalized")
    ]
    assert firsts == sorted(firsts), log
    stages = page.locator("#timeline li").evaluate_all("ls => ls.map(l => l.dataset.stage)")
    assert stages == ["requested", "attested", "finalized"]

    href = page.get_by_test_id("request-link").get_attribute("href")
    assert href is not None and href.startswith("dashboard#req-0x")
    rid_hex = href.split("#req-", 1)[1]
    rid = int(rid_hex, 16)
    view = stack.client.get_request(rid)
    assert (view.requester, view.operator, view.status.name) == (stack.requester, stack.operator, "FINALIZED")
    assert stack.client.is_attested_output(rid, bytes([int(label)]))

    # A second request, straight to the chain, so the dashboard has a live countdown to show.
    open_rid, _ = stack.client.request(
        stack.requester, stack.exact_id, bytes.fromhex(SAMPLES[1]["input_hex"][2:])
    )
    open_hex = f"0x{open_rid:064x}"

    page.goto(f"{stack.base}/dashboard")
    expect(page.get_by_test_id("live")).to_have_text("live")
    row = page.locator(f'[data-testid="request-row"][data-request-id="{rid_hex}"]')
    expect(row).to_have_attribute("data-status", "FINALIZED")
    expect(row.get_by_test_id("request-status")).to_have_text("finalized")
    expect(row.get_by_test_id("request-output")).to_contain_text(f"({label})")

    open_row = page.locator(f'[data-testid="request-row"][data-request-id="{open_hex}"]')
    expect(open_row).to_have_attribute("data-status", "SUBMITTED", timeout=10_000)
    countdown = open_row.get_by_test_id("countdown")
    expect(countdown).to_contain_text("s left")
    first = countdown.text_content()
    page.wait_for_timeout(450)
    assert countdown.text_content() != first  # ticking between refreshes
    expect(open_row).to_have_attribute("data-status", "FINALIZED", timeout=15_000)

    model = page.locator(f'[data-testid="model-row"][data-model-id="{stack.exact_id}"]')
    expect(model).to_contain_text("EXACT")
    expect(model).to_contain_text("live")
    expect(model.get_by_test_id("model-fee")).to_have_text("0.001 ETH")
    for model_id, shown in stack.token_models.items():  # a token fee in its token, never as ETH
        row = page.locator(f'[data-testid="model-row"][data-model-id="{model_id}"]')
        expect(row.get_by_test_id("model-fee")).to_have_text(shown)
    expect(page.locator(f'[data-testid="operator-row"][data-address="{stack.operator}"]')).to_have_count(1)
    expect(page.get_by_test_id("total-finalized")).to_contain_text("2")
    expect(page.get_by_test_id("disputes-table").locator("tbody tr")).to_have_count(0)
    assert problems == []
    page.close()


def test_a_proven_fraud_shows_as_corrected_on_the_try_page_and_the_dashboard(stack: Stack) -> None:
    with chromium() as browser:
        watch_a_fraud(browser, stack)


def watch_a_fraud(browser: Any, stack: Stack) -> None:
    from playwright.sync_api import expect

    sample = SAMPLES[1]
    pixels = list(bytes.fromhex(sample["input_hex"][2:]))
    right = int(sample["expected_output"][0])
    wrong = (right + 1) % 10
    problems: list[str] = []
    stack.node.pause()  # the honest node stays out of it; a cheater answers by hand
    try:
        page = new_page(browser, problems)
        page.goto(f"{stack.base}/try")
        expect(page.get_by_test_id("try-info")).to_contain_text(f"model #{stack.exact_id}")
        draw(page, pixels)
        page.get_by_test_id("submit").click()
        status = page.get_by_test_id("try-status")
        expect(status).to_contain_text("requested")
        href = page.get_by_test_id("request-link").get_attribute("href")
        assert href is not None
        rid = int(href.split("#req-", 1)[1], 16)

        stack.client.submit(stack.cheater, rid, bytes([wrong]))
        expect(status).to_contain_text(f"attested: the operator answered {wrong}")
        stack.client.challenge(
            stack.challenger, rid, bytes(pixels)
        )  # re-executed on-chain, inside the window
        expect(status).to_have_text(
            f"fraud proven, corrected: the model read {right} (the operator claimed {wrong} and was slashed)"
        )
        expect(page.get_by_test_id("result-digit")).to_have_text(str(right))
        expect(page.get_by_test_id("stage-attested")).to_have_attribute("data-state", "failed")
        stages = page.locator("#timeline li").evaluate_all("ls => ls.map(l => l.dataset.stage)")
        assert stages == ["requested", "attested", "fraud_proven"]

        page.goto(f"{stack.base}/dashboard")
        rid_hex = f"0x{rid:064x}"
        row = page.locator(f'[data-testid="request-row"][data-request-id="{rid_hex}"]')
        expect(row.get_by_test_id("request-status")).to_have_text("fraud proven, corrected")
        dispute = page.locator(f'[data-testid="dispute-row"][data-request-id="{rid_hex}"]')
        expect(dispute).to_contain_text(f"({wrong})")
        expect(dispute).to_contain_text(f"({right})")
        cheater = page.locator(f'[data-testid="operator-row"][data-address="{stack.cheater}"]')
        expect(cheater.locator("td").last).to_contain_text("1 (")
        expect(page.get_by_test_id("total-frauds-proven")).to_contain_text("1")
        assert problems == []
        page.close()
    finally:
        stack.node.resume()
