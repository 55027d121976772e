"""Open an example workflow from ComfyUI's real template browser, queue it, screenshot both.

What a new user does: Templates -> the pack's section -> a card -> Run. Drives the
real web frontend in headless Chromium through the comfy_host harness's browser
(`ui_browser.py`, found with --harness). From the project's root, with a server
started by `../shared/tools/comfy_host/start_host.sh --fresh-input .`:

    python3 tools/template_browser_check.py --pack PACK --name 01_dream_sample_photo --out shots/

Writes `shots/browser.png` (the template dialog on the pack's section, thumbnails
visible), `shots/opened.png` (the workflow as opened, before the run) and
`shots/result.png` (after the run). Exit 0 when the
card showed its thumbnail and the queued workflow succeeded.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from pathlib import Path

OPEN_TEMPLATES = "window.comfyAPI.app.app.extensionManager.command.execute('Comfy.BrowseTemplates').then(() => 1)"
CLICK_SECTION = """(() => {
  const item = [...document.querySelectorAll('[role=dialog] li')].find(e => e.textContent.trim() === %s);
  if (item) item.click();
  return !!item;
})()"""
CARDS = """[...document.querySelectorAll('[role=dialog] h3')].map(h => {
  let card = h; while (card && !card.querySelector('img')) card = card.parentElement;
  const img = card && card.querySelector('img');
  return {title: h.textContent.trim(), loaded: !!img && img.complete && img.naturalWidth > 0};
})"""
CLICK_CARD = """(() => {
  const h = [...document.querySelectorAll('[role=dialog] h3')].find(e => e.textContent.trim() === %s);
  let card = h; while (card && !card.querySelector('img')) card = card.parentElement;
  if (card) card.querySelector('img').click();
  return !!card;
})()"""
SEARCH = """(() => {
  const box = document.querySelector('[role=dialog] input[placeholder*="Search"]');
  if (!box) return false;
  box.value = %s; box.dispatchEvent(new Event('input', {bubbles: true}));
  return true;
})()"""
GRAPH_TYPES = "window.comfyAPI.app.app.graph._nodes.map(n => n.type)"
PREVIEWS = """window.comfyAPI.app.app.graph._nodes.filter(n => n.type === 'LoadImage')
  .map(n => ({image: n.widgets[0].value, width: (n.imgs && n.imgs[0] && n.imgs[0].naturalWidth) || 0}))"""


def history(server: str, prompt_id: str) -> dict:
    with urllib.request.urlopen(f"{server}/history/{prompt_id}", timeout=10) as response:
        return json.loads(response.read()).get(prompt_id, {})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pack", required=True, help="the pack's folder name in custom_nodes/")
    parser.add_argument("--name", default="01_dream_sample_photo")
    parser.add_argument("--out", type=Path, default=Path("shots"))
    parser.add_argument("--server", default="http://127.0.0.1:8188")
    parser.add_argument("--harness", type=Path, default=Path("../shared/tools/comfy_host"))
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    sys.path.insert(0, str(args.harness.resolve()))
    import ui_browser

    args.out.mkdir(parents=True, exist_ok=True)
    browser = ui_browser.Browser(args.server + "/", 1600, 1000)
    try:
        browser.call("Runtime.enable")
        browser.call("Page.enable")
        browser.wait_for_app()
        browser.eval(OPEN_TEMPLATES)
        time.sleep(2)
        if not browser.eval(CLICK_SECTION % json.dumps(args.pack)):
            print(f"no template section {args.pack!r} in the browser")
            return 1
        time.sleep(3)  # thumbnails load
        browser.eval(SEARCH % json.dumps(args.name))  # the grid shows only some cards until scrolled
        time.sleep(3)
        cards = browser.eval(CARDS)
        browser.screenshot(str(args.out / "browser.png"))
        shown = {card["title"]: card["loaded"] for card in cards}
        print(f"cards: {len(shown)}, with a loaded thumbnail: {sum(shown.values())}")
        if not shown.get(args.name):
            print(f"{args.name}: no card with a loaded thumbnail")
            return 1
        browser.eval(CLICK_CARD % json.dumps(args.name))
        time.sleep(3)
        print("graph:", ", ".join(browser.eval(GRAPH_TYPES)))
        previews = browser.eval(PREVIEWS)
        print("Load Image previews before the run:", ", ".join(f"{p['image']} {p['width']} px" for p in previews))
        browser.screenshot(str(args.out / "opened.png"))
        queued = json.loads(browser.eval(ui_browser.QUEUE_JS, timeout=120))
        if not queued.get("ok"):
            print("rejected:", json.dumps(queued)[:2000])
            return 1
        prompt_id = queued["resp"]["prompt_id"]
        end = time.time() + args.timeout
        while time.time() < end:
            status = history(args.server, prompt_id).get("status", {})
            if status.get("completed") or status.get("status_str") in ("success", "error"):
                break
            time.sleep(0.5)
        time.sleep(2)  # the result preview draws
        browser.screenshot(str(args.out / "result.png"))
        print(f"prompt {prompt_id}: {status.get('status_str')}")
        return 0 if status.get("status_str") == "success" else 1
    finally:
        browser.close()


if __name__ == "__main__":
    sys.exit(main())
