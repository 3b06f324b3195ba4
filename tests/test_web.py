"""The web page in real headless Chromium (Debian's package, driven by Playwright; never `playwright install`)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from posos_client.server import free_port, local_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason="Debian's chromium is not installed (apt-get install chromium)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (Python) is not installed")


@pytest.fixture(scope="module")
def server(trained_model_dir: Path):
    url = f"http://127.0.0.1:{free_port()}"
    with httpx.Client() as client, local_server(url, client, 120,
                                                           trained_model_dir / "models" / "intent_model.pkl"):
        yield url


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture()
def page(browser, server: str):
    """A fresh page on the app; records page errors, console errors and any request leaving the server."""
    context = browser.new_context()
    page = context.new_page()
    page.problems = []  # type: ignore[attr-defined]
    page.on("pageerror", lambda exc: page.problems.append(f"page error: {exc}"))
    page.on("console", lambda msg: msg.type == "error" and page.problems.append(f"console: {msg.text}"))

    def guard(route) -> None:
        if route.request.url.startswith(server) or route.request.url.startswith("data:"):
            route.continue_()
        else:
            page.problems.append(f"network request outside the app: {route.request.url}")
            route.abort()

    page.route("**/*", guard)
    page.goto(f"{server}/")
    yield page
    context.close()


def expected(server: str, query: str, k: int = 3) -> dict:
    return httpx.get(f"{server}/intent", params={"query": query, "top_k": k}).json()


def test_typing_a_question_shows_the_top_intent_and_its_name(page, server: str) -> None:
    query = "Quels sont les effets secondaires du doliprane ?"
    page.locator("#query").press_sequentially(query, delay=5)
    best = page.locator("#results li.best")
    best.wait_for(timeout=15_000)
    answer = expected(server, query)
    sync_api.expect(best.locator(".name")).to_have_text(answer["name"], timeout=15_000)
    assert best.get_attribute("data-intent") == str(answer["intent"])
    assert page.locator("#results li").count() == 3
    assert "%" in best.locator(".score").inner_text()
    width = best.locator(".fill").evaluate("el => parseFloat(el.style.width)")
    assert width == pytest.approx(100 * answer["confidence"], abs=0.2)
    sync_api.expect(page.locator("#status")).to_contain_text(answer["name"])
    assert page.problems == []


def test_clicking_an_example_and_changing_top_k(page, server: str) -> None:
    example = page.locator("#examples button").nth(1)
    text = example.inner_text()
    example.click()
    sync_api.expect(page.locator("#query")).to_have_value(text)
    sync_api.expect(page.locator("#results li.best .name")).to_have_text(expected(server, text)["name"],
                                                                         timeout=15_000)
    page.select_option("#top_k", "5")
    sync_api.expect(page.locator("#results li")).to_have_count(5, timeout=15_000)
    assert page.problems == []


def test_submit_with_enter_and_odd_text_is_shown_safely(page, server: str) -> None:
    query = "<img src=x onerror=alert(1)> posologie 💊"
    page.locator("#query").fill(query)
    page.locator("#query").press("Enter")
    best = page.locator("#results li.best .name")
    sync_api.expect(best).to_have_text(expected(server, query)["name"], timeout=15_000)
    assert page.locator("#results img").count() == 0
    page.locator("#query").fill("   ")
    sync_api.expect(page.locator("#results li")).to_have_count(0, timeout=15_000)
    assert page.problems == []


def test_model_card_is_shown(page, server: str) -> None:
    card = httpx.get(f"{server}/version").json()
    model = page.locator("#model")
    sync_api.expect(model).to_contain_text(card["model_version"], timeout=15_000)
    sync_api.expect(model).to_contain_text("F1 macro")
    sync_api.expect(model).to_contain_text("Exactitude")
    assert page.problems == []


def test_the_openapi_ui_works_offline(page, server: str) -> None:
    page.goto(f"{server}/schema")
    sync_api.expect(page.locator(".swagger-ui .opblock-summary-path").first).to_be_visible(timeout=15_000)
    sync_api.expect(page.locator(".swagger-ui")).to_contain_text("/intent")
    sync_api.expect(page.locator(".swagger-ui")).to_contain_text("/health")
    assert page.problems == []


def test_an_unsure_answer_tags_its_candidates_in_the_bars_once_and_a_sure_one_tags_none(page, server: str) -> None:
    """The conformal set is shown once: as tagged bars, never again as a list in the unsure box; candidates beyond
    the chosen top k get a bar of their own (answers altered on their way in)."""
    query = "doliprane enceinte ?"
    truth = expected(server, query, k=3)

    def answer(route, unsure: bool) -> None:
        body = route.fetch().json()
        route.fulfill(json=body | {"unsure": unsure, "candidates": truth["top_k"]})

    box, bars = page.locator("#unsure"), page.locator("#results li")
    page.route("**/intent?*", lambda route: answer(route, True))
    page.select_option("#top_k", "1")
    page.locator("#query").fill(query)
    sync_api.expect(box).to_be_visible(timeout=15_000)
    sync_api.expect(bars).to_have_count(3)  # top 1, and the two other candidates
    assert bars.evaluate_all("els => els.map(e => Number(e.dataset.intent))") == [c["intent"] for c in truth["top_k"]]
    sync_api.expect(page.locator("#results li.candidate .tag")).to_have_count(3)
    assert box.locator("li").count() == 0, "the unsure box does not list the candidates a second time"
    sync_api.expect(box).to_contain_text("90,0")  # the card's 1 - alpha
    sync_api.expect(box).to_contain_text("l'une des 3")
    page.unroute("**/intent?*")
    page.route("**/intent?*", lambda route: answer(route, False))
    page.locator("#query").fill("effets secondaires du doliprane")
    sync_api.expect(box).to_be_hidden(timeout=15_000)
    sync_api.expect(bars).to_have_count(1)
    assert page.locator("#results li.candidate").count() == 0
    assert page.problems == []


@pytest.mark.parametrize("query, why, has_candidates", [
    ("💊💊 ?!", "ni lettre ni chiffre", False),  # no content: no candidate set
    ("recette des crêpes au chocolat", "ne ressemble à aucune question", True),  # out of scope
])
def test_an_unsure_answer_says_why(page, server: str, query: str, why: str, has_candidates: bool) -> None:
    """The API's reason reaches the page."""
    box = page.locator("#unsure")
    page.locator("#query").fill(query)
    sync_api.expect(box).to_be_visible(timeout=15_000)
    sync_api.expect(box).to_contain_text(why)
    sync_api.expect(page.locator("#coverage")).to_be_visible(visible=has_candidates)
    candidates = expected(server, query)["candidates"]
    sync_api.expect(page.locator("#results li.candidate")).to_have_count(len(candidates))
    assert len(candidates) > 0 if has_candidates else candidates == []
    assert box.locator("li").count() == 0
    assert page.problems == []
