"""The dashboard in real headless Chromium (Debian's), driven by Playwright, against real servers."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest
from evm import mint, mint_cheap
from integration.server import Server, free_port, server_env

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--no-first-run", "--disable-sync"]
FAST = {"promptIndex": 1, "styleIndex": 8, "samplerIndex": 2, "aspectIndex": 0, "steps": 18, "cfg": 75,
        "paletteId": 3}

if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        raise RuntimeError("CI needs Debian's chromium for the browser tests: apt-get install chromium")
    pytest.skip("Debian's chromium is not installed (./run_tests.sh installs it)", allow_module_level=True)

playwright_sync = pytest.importorskip("playwright.sync_api")

# Records every value the progress bar takes, from the moment the page loads.
RECORD_PROGRESS = """
window.__progress = [];
window.__previews = [];
new MutationObserver((changes) => {
  const bar = document.getElementById("progress");
  if (bar) window.__progress.push(Number(bar.value));
  for (const change of changes) {
    if (change.target.id === "preview" && change.attributeName === "src") window.__previews.push(change.target.src);
  }
}).observe(document, { subtree: true, attributes: true, attributeFilter: ["value", "src"] });
"""


@pytest.fixture(scope="module")
def browser():
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def service(anvil, contract, tiny_env, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("dashboard")
    env = server_env(tiny_env, workdir, rpc_url=anvil.url, chain_id="31337", params_contract=contract.address)
    with Server(env, workdir) as server:
        yield server


@pytest.fixture
def page(browser, service):
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.add_init_script(RECORD_PROGRESS)
    page.goto(service.url + "/")
    page.wait_for_selector("body[data-ready=true]")
    yield page
    context.close()


def fill_manual(page, params: dict) -> None:
    page.get_by_text("Enter parameters by hand").click()
    for key, value in params.items():
        page.locator(f"#manual-fields input[name={key}]").fill(str(value))
    page.get_by_role("button", name="Use these parameters").click()


def params_shown(page) -> dict[str, str]:
    terms = page.locator("#params dt").all_inner_texts()
    values = page.locator("#params dd").all_inner_texts()
    return dict(zip(terms, values, strict=True))


def wait_for_result(page, timeout=120_000) -> None:
    page.wait_for_selector("#result:not([hidden])", timeout=timeout)


def test_page_and_status_badge(page):
    assert page.title() == "AleaArt dashboard"
    page.wait_for_function("document.getElementById('status').textContent.startsWith('Model loaded')")
    assert "cpu" in page.locator("#status").inner_text()


def test_latest_and_load_parameters_show_names(page, anvil, contract, service):
    w3 = anvil.web3()
    older = mint_cheap(contract, w3)
    latest = mint_cheap(contract, w3)
    token = httpx.get(f"{service.url}/tokens/{latest}").json()

    page.get_by_role("button", name="Get Latest Art Parameters").click()
    page.wait_for_selector("#params:not([hidden])")
    shown = params_shown(page)
    named = token["named"]
    assert shown["Token"] == f"#{latest}"
    assert (shown["Prompt"], shown["Style"], shown["Sampler"]) == (named["prompt"], named["style"], named["sampler"])
    assert shown["Aspect"] == "Square 512×512" and shown["CFG"] == named["cfg"]
    assert shown["Seed"] == str(token["parameters"]["latentSeed"]) and shown["Matches seed"].startswith("yes")
    assert shown["Palette"].strip() == named["palette"]  # its name, then its five colours as swatches
    swatches = page.locator("#params .swatch")
    assert swatches.count() == 5
    assert swatches.first.evaluate("chip => getComputedStyle(chip).backgroundColor").startswith("rgb(")

    page.get_by_label("Token id").fill(str(older))
    page.get_by_role("button", name="Load Parameters").click()
    page.wait_for_function(f"document.querySelector('#params dd').textContent === '#{older}'")
    assert params_shown(page)["Token"] == f"#{older}"


def test_generate_progress_image_gallery_then_cached(page, anvil, contract):
    token_id = mint_cheap(contract, anvil.web3())
    page.get_by_label("Token id").fill(str(token_id))
    page.get_by_role("button", name="Load Parameters").click()
    page.wait_for_selector("#params:not([hidden])")
    page.get_by_role("button", name="🎨 Generate Image").click()
    wait_for_result(page)

    values = page.evaluate("window.__progress")
    assert len(set(values)) >= 3 and values == sorted(values), values  # the bar advanced step by step
    previews = page.evaluate("window.__previews")  # the picture forming under the bar, then the result instead
    assert previews and all(p.startswith("data:image/webp;base64,") for p in previews), previews[:1]
    assert page.locator("#preview").is_hidden()
    image = page.locator("#result-image")
    page.wait_for_function("document.getElementById('result-image').complete")
    natural = image.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert natural == [512, 512]
    assert image.get_attribute("alt").startswith(f"Generated image for token #{token_id}")
    assert "cached" not in page.locator("#result-meta").inner_text()
    assert page.locator("#cancel").is_hidden() and page.locator("#progress-box").is_hidden()
    assert page.locator("#result-download").get_attribute("href").startswith("/generated_images/art_token_")
    in_gallery = f"[...document.querySelectorAll('#gallery span')].some(s => s.textContent === 'Token #{token_id}')"
    page.wait_for_function(in_gallery)

    page.get_by_role("button", name="🎨 Generate Image").click()
    page.wait_for_function("document.getElementById('result-meta').textContent.includes('cached')")

    page.get_by_role("button", name="Variations").click()  # under the image: four near it, with progress
    wait_for_derived(page, "Variations")
    shown = page.locator("#derived-grid img")
    assert shown.count() == 4
    sources = shown.evaluate_all("images => images.map(i => i.getAttribute('src'))")
    assert len(set(sources)) == 4 and all(s.startswith("/generated_images/art_token_") for s in sources)
    page.wait_for_function("[...document.querySelectorAll('#derived-grid img')].every(i => i.complete "
                           "&& i.naturalWidth === 512)")

    page.get_by_role("button", name="Upscale 2x").click()  # from the image shown, with progress
    wait_for_derived(page, "Upscale 2x")
    page.wait_for_function("[...document.querySelectorAll('#derived-grid img')].every(i => i.complete "
                           "&& i.naturalWidth === 1024 && i.naturalHeight === 1024)")
    page.get_by_label("Restyle style").select_option(label="Watercolor")
    page.get_by_role("button", name="Restyle").click()
    wait_for_derived(page, "Restyled: Watercolor")
    assert "watercolor, soft, flowing" in page.locator("#derived-grid img").get_attribute("alt")

    page.get_by_role("button", name="Animate").click()  # a looping video of the token, playing in the page
    wait_for_derived(page, "Animation")
    video = page.locator("#derived-grid video")
    assert video.count() == 1 and video.get_attribute("src").endswith(".mp4")
    # Chromium decodes the H.264 and plays it: frames arrive, the clock moves, its size is the token's
    page.wait_for_function("(() => { const v = document.querySelector('#derived-grid video'); "
                           "return v.readyState >= 2 && v.currentTime > 0 && !v.paused; })()", timeout=60_000)
    assert video.evaluate("v => [v.videoWidth, v.videoHeight, v.loop, v.muted]") == [512, 512, True, True]
    page.wait_for_function("document.querySelector('#gallery video') !== null")  # the gallery shows it too

    page.locator("#gallery button").first.click()
    dialog = page.locator("#details")
    assert dialog.is_visible() and "SHA-256" in dialog.inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.keyboard.press("Escape")
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)


def wait_for_derived(page, heading: str) -> None:
    # Generous: an animation is 24 renders, and this machine may be busy with other work; it only bounds a hang.
    page.wait_for_function(f"!document.getElementById('derived-box').hidden && "
                           f"document.getElementById('derived-heading').textContent === {heading!r}", timeout=600_000)


def test_cancel_a_running_job(page):
    fill_manual(page, {**FAST, "aspectIndex": 2, "steps": 64, "latentSeed": 31337})
    page.get_by_role("button", name="🎨 Generate Image").click()
    page.wait_for_function("document.getElementById('progress-label').textContent.startsWith('Step ')")
    page.get_by_role("button", name="Cancel").click()
    page.wait_for_function("document.getElementById('job-status').textContent === 'Cancelled.'", timeout=60_000)
    assert page.locator("#result").is_hidden()
    assert page.get_by_role("button", name="🎨 Generate Image").is_enabled()


def test_keyboard_only_main_flow(page, anvil, contract):
    token_id = mint_cheap(contract, anvil.web3())
    page.keyboard.press("Tab")  # the skip link
    page.keyboard.press("Enter")
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "token-id":
            break
    assert page.evaluate("document.activeElement.id") == "token-id"
    page.keyboard.type(str(token_id))
    page.keyboard.press("Enter")
    page.wait_for_function(f"document.querySelector('#params dd')?.textContent === '#{token_id}'")
    for _ in range(15):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "generate":
            break
    assert page.evaluate("document.activeElement.id") == "generate"
    page.keyboard.press("Enter")
    wait_for_result(page)
    assert page.evaluate("document.activeElement.id") == "result-heading"  # focus moves to the result


def test_token_not_ready_is_explained(page, anvil, contract):
    pending = mint(contract, anvil.web3())
    page.get_by_label("Token id").fill(str(pending))
    page.get_by_role("button", name="Load Parameters").click()
    error = page.get_by_role("alert")
    error.wait_for()
    assert f"token {pending} is not ready" in error.inner_text()


def test_phone_width_has_no_sideways_scroll(browser, service):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    page.goto(service.url + "/")
    page.wait_for_selector("body[data-ready=true]")
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 390
    context.close()


def open_dashboard(browser, server) -> tuple:
    context = browser.new_context()
    page = context.new_page()
    page.goto(server.url + "/")
    page.wait_for_selector("body[data-ready=true]")
    return context, page


def test_chain_down_and_model_missing_are_explained(browser, tiny_env, tmp_path):
    env = server_env(tiny_env, tmp_path, model=str(tmp_path / "no-model"), rpc_url=f"http://127.0.0.1:{free_port()}",
                     chain_id="31337", chain_timeout="2")
    with Server(env, tmp_path) as server:
        context, page = open_dashboard(browser, server)
        page.wait_for_function("document.getElementById('status').textContent.startsWith('Model not loaded')")
        page.get_by_role("button", name="Get Latest Art Parameters").click()
        error = page.get_by_role("alert")
        error.wait_for()
        assert "The chain is unreachable" in error.inner_text()
        fill_manual(page, {**FAST, "latentSeed": 1})
        page.get_by_role("button", name="🎨 Generate Image").click()
        page.wait_for_function("document.getElementById('error').textContent.includes('The model is not loaded')")
        assert "ALEAART_MODEL=tiny" in error.inner_text()
        context.close()


def test_queue_full_is_explained(browser, tiny_env, tmp_path):
    slow = {"prompt": "slow", "steps": 100, "width": 1024, "height": 1024}
    with Server(server_env(tiny_env, tmp_path, max_queue="1"), tmp_path) as server:
        jobs = [httpx.post(server.url + "/jobs", json={**slow, "seed": seed}).json() for seed in (1, 2)]
        context, page = open_dashboard(browser, server)
        fill_manual(page, {**FAST, "latentSeed": 3})
        page.get_by_role("button", name="🎨 Generate Image").click()
        page.get_by_role("alert").wait_for()
        assert "The queue is full" in page.get_by_role("alert").inner_text()
        for job in jobs:
            httpx.delete(server.url + job["statusUrl"])
        context.close()


def test_backend_unreachable_is_explained(browser, service):
    context = browser.new_context()
    page = context.new_page()
    page.goto(service.url + "/")
    page.wait_for_selector("body[data-ready=true]")
    page.route("**/tokens/**", lambda route: route.abort("connectionrefused"))
    page.get_by_role("button", name="Get Latest Art Parameters").click()
    page.get_by_role("alert").wait_for()
    assert "Cannot reach the AleaArt backend" in page.get_by_role("alert").inner_text()
    context.close()


def test_api_key_is_asked_once_and_sent(browser, tiny_env, tmp_path):
    with Server(server_env(tiny_env, tmp_path, api_key="k3y"), tmp_path) as server:
        context, page = open_dashboard(browser, server)
        page.get_by_label("API key").wait_for()
        page.get_by_label("API key").fill("k3y")
        page.get_by_role("button", name="Save key").click()
        assert page.locator("#key-form").is_hidden()
        page.wait_for_function("document.getElementById('key-status').textContent.startsWith('Key env (read')")
        fill_manual(page, {**FAST, "latentSeed": 2})
        page.get_by_role("button", name="🎨 Generate Image").click()
        wait_for_result(page)
        page.reload()
        page.wait_for_selector("body[data-ready=true]")
        assert page.locator("#key-form").is_hidden()  # kept for the session: asked once
        context.close()


def test_a_whole_collection_fills_its_grid_and_offers_the_car(browser, service, anvil, contract):
    w3 = anvil.web3()
    ids = [mint_cheap(contract, w3) for _ in range(3)]
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.goto(service.url + "/")
    page.get_by_role("link", name="Whole collection").click()
    page.wait_for_selector("body[data-ready=true]")
    page.get_by_label("From token").fill(str(ids[0]))
    page.get_by_label("To token").fill(str(ids[-1]))
    page.get_by_role("button", name="Render collection").click()
    page.wait_for_selector("#done:not([hidden])", timeout=240_000)
    assert page.locator("#tokens li[data-ready=true]").count() == 3
    assert page.locator("#tokens img").first.evaluate("img => img.complete && img.naturalWidth > 0")
    assert "bafybei" in page.locator("#cids").inner_text()
    car = httpx.get(service.url + page.locator("#car").get_attribute("href"), timeout=30)
    assert car.status_code == 200 and car.headers["content-type"] == "application/vnd.ipld.car"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "collection.png"), full_page=True)
    context.close()


@pytest.fixture(scope="module")
def models_service(tiny_env, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("dashboard-models")
    with Server(server_env(tiny_env, workdir, admin_key="s3cret"), workdir) as server:
        yield server


def test_upload_a_lora_and_render_with_it(browser, models_service, tmp_path):
    from aleaart.engine.tiny import build_tiny_pipeline, write_tiny_lora

    lora = write_tiny_lora(build_tiny_pipeline(), tmp_path / "ink-style.safetensors", seed=5)
    (tmp_path / "notes.safetensors").write_bytes(b"not weights")
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.goto(models_service.url + "/")
    page.wait_for_selector("body[data-ready=true]")
    page.wait_for_selector("#models-card:not([hidden])")
    assert page.locator("#upload-form").is_hidden()  # until the admin key is entered
    page.get_by_label("Admin key").fill("s3cret")
    page.get_by_role("button", name="Use key").click()

    page.get_by_label("Weights file").set_input_files(str(tmp_path / "notes.safetensors"))
    page.get_by_role("button", name="Upload").click()
    page.wait_for_function("document.getElementById('upload-status').textContent.startsWith('Not uploaded')")
    assert "not a readable .safetensors" in page.locator("#upload-status").inner_text()

    page.get_by_label("Weights file").set_input_files(str(lora))
    page.get_by_role("button", name="Upload").click()
    page.wait_for_function("document.getElementById('upload-status').textContent.startsWith('Uploaded')")
    picked = page.locator("#lora-pick").input_value()
    assert len(picked) == 16 and "ink-style.safetensors" in page.locator("#lora-pick").inner_text()

    fill_manual(page, {**FAST, "latentSeed": 4711})
    page.get_by_role("button", name="🎨 Generate Image").click()
    wait_for_result(page)
    with_lora = page.locator("#result-image").get_attribute("src")
    page.get_by_label("LoRA", exact=True).select_option("")
    page.get_by_role("button", name="🎨 Generate Image").click()
    page.wait_for_function(f"document.getElementById('result-image').getAttribute('src') !== {with_lora!r} "
                           "&& !document.getElementById('result').hidden", timeout=120_000)
    without = page.locator("#result-image").get_attribute("src")
    assert httpx.get(models_service.url + with_lora).content != httpx.get(models_service.url + without).content
    context.close()


def verify_rows(page) -> dict[str, str]:
    terms, values = (page.locator(f"#verify-list {tag}").all_inner_texts() for tag in ("dt", "dd"))
    return dict(zip(terms, values, strict=True))


def test_verify_a_token_with_its_rerender_side_by_side_and_another_tools_file_in_words(page, anvil, contract,
                                                                                         tmp_path):
    from outside_files import OtherSigner, foreign_file

    token = mint_cheap(contract, anvil.web3())
    panel = page.locator("#verify-card")
    panel.get_by_label("Token to verify").fill(str(token))
    panel.get_by_label("Render it again here and compare").check()
    panel.get_by_role("button", name="Verify", exact=True).click()
    page.wait_for_selector("#verify-result:not([hidden])", timeout=180_000)
    assert page.locator("#verify-verdict").inner_text() == "✓ An intact aleaart image"
    shown = verify_rows(page)
    assert shown["Credentials"].startswith("untrusted: Intact") and shown["Failing checks"].startswith(
        "signingCredential.untrusted (active manifest)")
    assert shown["aleaart image"].startswith("Yes, recipe class") and shown["Pixels changed"] == "no"
    assert shown[f"Token {token}"] == "Its parameters equal the chain's" and shown["Re-render"].startswith("exact")
    assert page.locator("#verify-compare").is_visible()
    for image in ("#verify-file-image", "#verify-rerender-image"):  # both pictures drawn, side by side
        page.wait_for_function(f"document.querySelector('{image}').naturalWidth > 0")
    left, right = (page.locator(i).bounding_box() for i in ("#verify-file-image", "#verify-rerender-image"))
    assert abs(left["y"] - right["y"]) < 2 and right["x"] > left["x"]

    (tmp_path / "photo.png").write_bytes(foreign_file(OtherSigner.make(tmp_path / "ca")))
    panel.get_by_label("Token to verify").fill("")
    panel.get_by_label("Render it again here and compare").uncheck()
    panel.get_by_label("File to verify").set_input_files(str(tmp_path / "photo.png"))
    panel.get_by_role("button", name="Verify", exact=True).click()
    page.wait_for_function("document.getElementById('verify-verdict').textContent.includes('another tool')")
    shown = verify_rows(page)
    assert shown["Credentials"].startswith("untrusted: Intact")  # intact, and not aleaart's: never "invalid"
    assert shown["aleaart image"] == "No: Other Camera App 5.1 made these credentials, not aleaart"
    assert page.locator("#verify-compare").is_hidden()
