"""The page in a real browser: Debian's Chromium driven by Playwright against gunicorn."""

from __future__ import annotations

import base64
import io
import os

import numpy as np
import pytest
from PIL import Image

from support.browser import CHROMIUM, FLAGS, screenshot
from support.images import image_bytes, random_rgb
from support.server import Gunicorn

pytestmark = [
    pytest.mark.slow,  # end to end: `make test-fast` leaves it out
    pytest.mark.skipif(
        not CHROMIUM.exists() and not os.environ.get("CI"),
        reason="needs Debian's chromium (apt-get install chromium); .ci/run installs it",
    ),
]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def server(cnn_export):
    with Gunicorn(cnn_export) as running:
        yield running


def phone_photo() -> bytes:
    """A 3000x4000 JPEG of about 12 MB, as a phone takes them, stored turned on its side."""
    rng = np.random.default_rng(0)
    coarse = Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8))
    sharp = np.asarray(coarse.resize((4000, 3000), Image.Resampling.BILINEAR), dtype=np.int16)
    noisy = sharp + rng.integers(-70, 70, sharp.shape, dtype=np.int16)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown portrait
    buffer = io.BytesIO()
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(
        buffer, "JPEG", quality=95, exif=exif
    )
    return buffer.getvalue()


def file_payload(name: str, content: bytes, mime: str = "image/png") -> dict:
    return {"name": name, "mimeType": mime, "buffer": content}


# Chromium hands Playwright no body for a FormData of Blobs, so the page's own fetch
# is wrapped to keep a copy of every file it uploads.
RECORD_UPLOADS = """
window.uploads = [];
const sendRequest = window.fetch;
window.fetch = async (url, options) => {
    for (const [field, value] of options && options.body instanceof FormData
        ? options.body.entries() : []) {
        if (!(value instanceof Blob)) continue;
        const bytes = new Uint8Array(await value.arrayBuffer());
        let text = "";
        for (let i = 0; i < bytes.length; i += 0x8000) {
            text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
        }
        window.uploads.push({ field, name: value.name, base64: btoa(text) });
    }
    return sendRequest(url, options);
};
"""


def uploaded_files(page) -> list[tuple[str, bytes]]:
    """(name, bytes) of each file the page has sent to the server, in order."""
    sent = page.evaluate("window.uploads")
    return [(upload["name"], base64.b64decode(upload["base64"])) for upload in sent]


def test_one_image_gets_a_card_with_label_confidence_and_bars(browser, server, tmp_path):
    page = browser.new_page(viewport={"width": 1000, "height": 800})
    page.goto(server.url)
    assert "accuracy on its test images" in page.locator("#model").inner_text()
    png = image_bytes(random_rgb(41, (64, 64)))
    page.set_input_files("#file", files=[file_payload("photo.png", png)])
    card = page.locator("#results .card.done")
    card.wait_for()
    label = card.locator(".label").inner_text()
    guess = (
        label.removeprefix("not sure — maybe ")
        .removeprefix("not sure — unlike the training images (maybe ")
        .rstrip(")")
    )
    assert guess in {"circle", "square", "star"}
    assert card.locator(".confidence").inner_text().endswith("% confident")
    assert card.locator(".bars li").count() == 3
    assert card.locator(".file").inner_text() == "photo.png"
    assert card.locator(".thumb").evaluate("img => img.naturalWidth") == 64
    assert page.locator("#status").inner_text() == ""
    screenshot(page, tmp_path, "prediction")
    page.close()


def test_a_12_mb_phone_photo_is_shrunk_in_the_browser_and_classified(browser, server, tmp_path):
    photo = phone_photo()
    assert len(photo) > 10 * 2**20  # over the server's 10 MB request limit
    page = browser.new_page(viewport={"width": 1000, "height": 800})
    page.add_init_script(RECORD_UPLOADS)
    page.goto(server.url)
    side = max(256, 4 * int(page.locator("#upload").get_attribute("data-image-size")))
    page.set_input_files("#file", files=[file_payload("IMG_0001.jpg", photo, "image/jpeg")])
    card = page.locator("#results .card.done")
    card.wait_for(timeout=30_000)
    assert not page.locator("#results .card.failed").count()
    assert card.locator(".confidence").inner_text().endswith("% confident")
    ((name, sent),) = uploaded_files(page)  # one upload: the original never left
    assert name == "IMG_0001.jpg" and len(sent) < 1_000_000
    with Image.open(io.BytesIO(sent)) as shrunk:
        assert shrunk.format == "PNG" and shrunk.size == (side * 3 // 4, side)  # upright
    # The card shows the shrunk copy too: the browser keeps no 12-megapixel image.
    thumb = card.locator(".thumb").evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert thumb == [side * 3 // 4, side]
    assert page.locator("#status").inner_text() == ""  # nothing to say when it worked
    screenshot(page, tmp_path, "phone-photo")
    page.close()


def test_a_heic_photo_the_browser_cannot_open_is_classified_by_the_server(browser, server):
    heic = image_bytes(random_rgb(45, (60, 80)), "HEIF", quality=90)
    page = browser.new_page(viewport={"width": 1000, "height": 800})
    page.add_init_script(RECORD_UPLOADS)
    page.goto(server.url)
    page.set_input_files("#file", files=[file_payload("IMG_0002.HEIC", heic, "image/heic")])
    card = page.locator("#results .card.done")
    card.wait_for()
    assert not page.locator("#results .card.failed").count()
    assert card.locator(".bars li").count() == 3
    assert uploaded_files(page) == [("IMG_0002.HEIC", heic)]  # sent as it is
    assert page.locator("#status").inner_text() == ""
    page.close()


def test_ten_images_at_once_with_one_broken_get_ten_cards_in_order(browser, server, tmp_path):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.goto(server.url)
    files = [
        file_payload(f"photo{n}.png", image_bytes(random_rgb(50 + n, (60, 45)))) for n in range(10)
    ]
    files[3] = file_payload("photo3.jpg", b"this is not an image" * 10, "image/jpeg")
    page.set_input_files("#file", files=files)
    page.locator("#results .card.done").nth(9).wait_for()
    cards = page.locator("#results .card")
    assert cards.count() == 10
    assert [cards.nth(n).locator(".file").inner_text() for n in range(10)] == [
        f["name"] for f in files
    ]
    failed = page.locator("#results .card.failed")
    assert failed.count() == 1
    assert "not a usable image" in failed.locator(".label").inner_text()
    assert failed.locator(".file").inner_text() == "photo3.jpg"
    assert page.locator("#results .card .bars li").count() == 9 * 3
    assert "1 of 10 could not be classified" in page.locator("#status").inner_text()
    screenshot(page, tmp_path, "ten-images")
    page.close()


def test_a_pasted_image_is_classified_in_place_of_the_last_choice(browser, server, tmp_path):
    page = browser.new_page(viewport={"width": 1000, "height": 800})
    page.goto(server.url)
    chosen = [file_payload(f"{n}.png", image_bytes(random_rgb(70 + n, (40, 40)))) for n in (0, 1)]
    page.set_input_files("#file", files=chosen)
    page.locator("#results .card.done").nth(1).wait_for()
    earlier = page.locator("#results .card .thumb").first.get_attribute("src")
    png = base64.b64encode(image_bytes(random_rgb(44, (40, 40)))).decode()
    page.evaluate(
        """(data) => {
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], "pasted.png", { type: "image/png" }));
            document.dispatchEvent(new ClipboardEvent("paste", { clipboardData: transfer }));
        }""",
        png,
    )
    card = page.locator("#results .card.done")
    card.wait_for()
    assert page.locator("#results .card").count() == 1  # the pasted image replaced both
    assert card.locator(".file").inner_text() == "pasted.png"
    assert card.locator(".bars li").count() == 3
    # The replaced cards' images are let go, not kept for the life of the page.
    loaded = page.evaluate(
        """(url) => new Promise((resolve) => {
            const image = new Image();
            image.onload = () => resolve("kept");
            image.onerror = () => resolve("freed");
            image.src = url;
        })""",
        earlier,
    )
    assert loaded == "freed"
    page.close()


def test_a_dropped_folder_is_walked_for_its_images(browser, server, tmp_path):
    # Playwright cannot drop a real directory, so the drop carries the same File and
    # Directory System entries Chromium gives for one (webkitGetAsEntry): a folder read
    # in two batches, with a subfolder and a text file, beside a loose image.
    page = browser.new_page(viewport={"width": 1000, "height": 800})
    page.goto(server.url)
    pngs = {
        name: base64.b64encode(image_bytes(random_rgb(60 + n, (40, 40)))).decode()
        for n, name in enumerate(["a.png", "b.png", "c.png", "top.png"])
    }
    page.evaluate(
        """(pngs) => {
            const file = (name, type) => {
                const text = atob(pngs[name] || "bm90ZXM=");  // "notes" for the text file
                const bytes = Uint8Array.from(text, (c) => c.charCodeAt(0));
                const made = new File([bytes], name, { type });
                return { isFile: true, isDirectory: false, file: (resolve) => resolve(made) };
            };
            const folder = (batches) => ({
                isFile: false,
                isDirectory: true,
                createReader: () => {
                    const left = [...batches, []];
                    return { readEntries: (resolve) => setTimeout(() => resolve(left.shift()), 0) };
                },
            });
            const holiday = folder([
                [file("a.png", "image/png"), file("notes.txt", "text/plain")],
                [folder([[file("c.png", "image/png")]]), file("b.png", "image/png")],
            ]);
            const items = [holiday, file("top.png", "image/png")].map((entry) => ({
                webkitGetAsEntry: () => entry,
            }));
            const drop = new Event("drop", { bubbles: true, cancelable: true });
            Object.defineProperty(drop, "dataTransfer", { value: { items, files: [] } });
            document.getElementById("drop").dispatchEvent(drop);
        }""",
        pngs,
    )
    page.locator("#results .card.done").nth(3).wait_for()
    cards = page.locator("#results .card")
    assert cards.count() == 4  # notes.txt is not an image: left out, not an error card
    names = [cards.nth(n).locator(".file").inner_text() for n in range(4)]
    assert names == ["a.png", "c.png", "b.png", "top.png"]  # the folder's walk order
    assert page.locator("#results .card .bars li").count() == 4 * 3
    page.close()


def test_page_works_from_the_keyboard_and_on_a_phone(browser, server, tmp_path):
    page = browser.new_page(viewport={"width": 375, "height": 740}, is_mobile=True)
    page.goto(server.url)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "file"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "submit"
    page.keyboard.press("Enter")  # nothing chosen yet: the browser asks for a file, no request
    assert page.locator("#file").evaluate("input => input.validationMessage") != ""
    assert page.locator("#results").is_hidden()
    assert page.locator("#file").get_attribute("accept") == "image/*"  # phones offer the camera
    files = [file_payload(f"{n}.png", image_bytes(random_rgb(42 + n, (30, 90)))) for n in range(3)]
    page.set_input_files("#file", files=files)
    page.locator("#results .card.done").nth(2).wait_for()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375  # the grid folds into one column: nothing overflows sideways
    screenshot(page, tmp_path, "phone")
    page.close()


def test_toggle_lays_the_heatmap_over_the_thumbnail(browser, server, tmp_path):
    page = browser.new_page(viewport={"width": 1000, "height": 800})
    page.goto(server.url)
    png = image_bytes(random_rgb(43, (64, 64)))
    page.set_input_files("#file", files=[file_payload("photo.png", png)])
    card = page.locator("#results .card.done")
    card.wait_for()
    heatmap = card.locator(".heatmap")
    assert heatmap.is_hidden()
    label = card.locator(".label")
    uncertain = "uncertain" in (label.get_attribute("class") or "")
    assert label.inner_text().startswith("not sure — ") == uncertain
    card.locator(".explain-toggle").check()
    card.locator(".heatmap:not([hidden])").wait_for()
    assert heatmap.evaluate("img => img.complete && img.naturalWidth") == 224
    assert heatmap.bounding_box() == card.locator(".thumb").bounding_box()  # exactly over it
    screenshot(page, tmp_path, "heatmap")
    card.locator(".explain-toggle").uncheck()
    assert heatmap.is_hidden()
    page.close()


def test_a_server_with_a_token_asks_for_it_once_and_again_only_if_refused(browser, cnn_export):
    token = "correct horse battery staple"
    with Gunicorn(cnn_export, extra_env={"IMGCLF_API_TOKEN": token}) as server:
        page = browser.new_page(viewport={"width": 1000, "height": 800})
        asked, answers = [], iter(["a wrong token", token])

        def answer(dialog) -> None:
            asked.append(dialog.message)
            dialog.accept(next(answers))

        page.on("dialog", answer)
        page.goto(server.url)
        for n in range(3):
            name = f"photo{n}.png"
            page.set_input_files("#file", files=[file_payload(name, image_bytes(random_rgb(n)))])
            card = page.locator("#results .card.done", has_text=name)
            card.wait_for()
            assert card.locator(".bars li").count() == 3
        # The wrong token got a 401 and the page asked again; then never again.
        assert asked == ["This server needs its API token:"] * 2
        assert page.evaluate("sessionStorage.getItem('imgclf-api-token')") == token
        assert not page.locator("#results .card.failed").count()
        page.close()


def test_an_image_unlike_the_training_images_is_said_to_be_so(
    browser, server, tiny_project, tmp_path
):
    from imgclf.data.prepared import read_split
    from imgclf.serving.predictor import Predictor

    # The test image the model finds most familiar, and noise: nothing like a shape.
    predictor = Predictor.load(tiny_project / "models" / "best", "onnx")
    test = read_split("test", tiny_project / "prepared")
    familiar = test.images[
        int(np.argmin(predictor.scores(test.images.astype("float32")).unfamiliarity))
    ]
    files = [
        file_payload("shape.png", image_bytes(Image.fromarray(familiar))),
        file_payload("noise.png", image_bytes(random_rgb(44, (64, 64)))),
    ]
    page = browser.new_page(viewport={"width": 1000, "height": 800})
    page.goto(server.url)
    page.set_input_files("#file", files=files)
    page.locator("#results .card.done").nth(1).wait_for()
    shape, noise = page.locator("#results .card").nth(0), page.locator("#results .card").nth(1)
    assert shape.locator(".unfamiliar-note").is_hidden()
    assert noise.locator(".unfamiliar-note").is_visible()
    assert "does not look like anything the model was trained on" in noise.inner_text()
    label = noise.locator(".label")
    assert label.inner_text().startswith("not sure — unlike the training images (maybe ")
    # The best guess is still shown, greyed: half opaque, no colour.
    assert label.evaluate("e => getComputedStyle(e).opacity") == "0.5"
    assert shape.locator(".label").evaluate("e => getComputedStyle(e).opacity") == "1"
    screenshot(page, tmp_path, "unfamiliar")
    page.close()
