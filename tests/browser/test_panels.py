"""Every panel of every notebook, as a learner meets it: in a real JupyterLab, in Chromium.

The panels are found in the notebooks (a code cell calling ``widgets.<name>_panel(``), never
listed by hand, so a new notebook's panels are covered when it lands. For each panel only the
cells it needs run: where the panel cell uses only imported names (every panel so far: ``widgets``),
a cell appended to the notebook with just those imports (the setup of the notebook's first cell,
its data and models, is nbval's to run, not this test's); otherwise the notebook's first code cell,
any earlier cell defining a name the panel cell uses. Then the panel cell, and, through the page:

- opened, before any cell runs, the panel cell shows the course's "run this cell" note (or, while the
  page's widget manager still looks for the panel, nothing), never a repr;
- it renders as widgets (not "Loading widget..." nor a text repr);
- its button gives a result; every slider starts at its minimum, the cheapest setting;
- changing a dropdown, a slider and a checkbox marks the old result stale, and the next press
  shows a result that differs and names the new setting; a live panel (class
  ``course-panel-live``) shows that new result by itself, with no stale note, and a press gives it
  again;
- each figure it shows is the same image, pixel for pixel, as the same figure drawn outside the
  panel and the browser (the ``course_lib.plots`` call the panel makes at those settings, made
  again here through pyplot, as a notebook cell makes it): a blank or half-drawn figure fails;
- a dropdown left empty (an impossible setting) shows a message, not a traceback;
- no message the course did not foresee (``course-panel-unexpected``); every figure at its natural
  size, never stretched; every dropdown wide enough for its longest entry;
- no traceback on the page or in the kernel's log, no browser console error;
- comm messages really went over a kernel subshell (JupyterLab's default since 4.4).

Screenshots of each panel before and after its changes are saved in a temporary folder, listed
at the end of the run.
"""

from __future__ import annotations

import ast
import base64
import builtins
import io
import json
import re
from pathlib import Path

import pytest
from browser_support import REPO, SCREENSHOTS, save_screenshot

pytestmark = pytest.mark.browser

PANEL_CALL = re.compile(r"\bwidgets\.(\w+_panel)\(")
CONTROLS = ".widget-dropdown, .widget-hslider, .widget-checkbox"
CELL_TIMEOUT_MS = 180_000
PRESS_TIMEOUT_MS = 180_000


# ----------------------------------------------------------------------------- discovery

def code_cells(path: Path) -> list[tuple[int, str]]:
    cells = json.loads(path.read_text())["cells"]
    return [(i, "".join(c["source"])) for i, c in enumerate(cells) if c["cell_type"] == "code"]


def discover_panels():
    """Each panel, in the first notebook that shows it (a panel shown again later, as notebook 03 shows
    notebook 00's device panel, runs the same code in the page)."""
    seen = set()
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        for index, source in code_cells(path):
            for name in PANEL_CALL.findall(source):
                if name not in seen:
                    seen.add(name)
                    yield pytest.param(path.name, index, id=f"{path.stem}-{name}")


def names_defined(source: str) -> set[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:                      # a cell with IPython magics defines nothing we track
        return set()
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
    return names


def names_used(source: str) -> set[str]:
    return {n.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def panel_imports(path: Path, panel_index: int) -> str | None:
    """The import statements of the notebook's earlier cells that bind every name the panel cell
    uses, as one cell's source; None if the panel cell uses a name no import binds."""
    used = names_used(dict(code_cells(path))[panel_index]) - set(dir(builtins))
    statements, bound = [], set()
    for index, source in code_cells(path):
        if index >= panel_index:
            break
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = {(a.asname or a.name).split(".")[0] for a in node.names}
                if names & used:
                    statements.append(ast.get_source_segment(source, node))
                    bound |= names
    return "\n".join(statements) if used <= bound else None


def cells_needed(path: Path, panel_index: int) -> list[int]:
    """The first code cell, every earlier cell that last defines a name the panel cell uses and
    the first does not, and the panel cell, in notebook order."""
    cells = code_cells(path)
    source = dict(cells)
    needed = {cells[0][0], panel_index}
    missing = names_used(source[panel_index]) - names_defined(cells[0][1]) - set(dir(builtins))
    for name in missing:
        defining = [i for i, s in cells if i < panel_index and name in names_defined(s)]
        assert defining, f"the panel cell {panel_index} of {path.name} uses {name!r}, defined nowhere before it"
        needed.add(defining[-1])
    return sorted(needed)


# ----------------------------------------------------------------------------- driving JupyterLab

class Notebook:
    """One notebook open in JupyterLab, its outputs cleared, with what went wrong on the page."""

    def __init__(self, lab, browser, name: str):
        self.lab, self.name = lab, name
        self.page = browser.new_page()
        self.console_errors: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.console_errors.append(m.text))
        self.page.on("pageerror", lambda e: self.console_errors.append(f"page error: {e}"))
        self.log_start = len(lab.log_text())
        self.page.goto(f"{lab.url}/lab/tree/{name}?reset&token={lab.token}")   # ?reset: no earlier tabs
        self.page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", state="attached",
                                    timeout=CELL_TIMEOUT_MS)
        if not lab.news_answered:          # JupyterLab asks once "receive official Jupyter news?"; a learner says No
            from playwright.sync_api import TimeoutError as NotAsked

            news = self.page.get_by_role("button", name="No", exact=True)
            try:
                news.first.wait_for(timeout=15_000)
                news.first.click()
            except NotAsked:               # not asked: nothing covers the page
                pass
            lab.news_answered = True
        # As the notebook opens, before anything runs: what each saved panel cell shows.
        self.opened, self.opened_png = {}, {}
        for i, source in code_cells(REPO / "notebooks" / name):
            if PANEL_CALL.search(source):
                self.cell(i).scroll_into_view_if_needed()      # a cell off screen is not drawn
                shown = self.cell(i).locator(".jp-OutputArea-output").first
                shown.wait_for(timeout=CELL_TIMEOUT_MS)
                for _ in range(12):                        # the page's widget manager draws the text once it finds
                    if shown.inner_text().strip():         # the panel gone from the kernel (ask again: it redraws
                        break                              # the element); until then the output stays empty (in
                    self.page.wait_for_timeout(250)        # the first notebook opened, for 20 s and more)
                self.opened[i], self.opened_png[i] = shown.inner_text(), self.cell(i).screenshot()
        self.page.get_by_role("menuitem", name="Edit", exact=True).click()
        self.page.get_by_text("Clear Outputs of All Cells", exact=True).click()
        self.page.wait_for_function("""() => ![...document.querySelectorAll('.jp-Notebook .jp-InputPrompt')]
                                            .some(p => /\\[\\d+\\]/.test(p.textContent))""")
        self.ran: set[int] = set()
        self.imports_cell: int | None = None

    def cell(self, index: int):
        return self.page.locator(".jp-Notebook .jp-Cell").nth(index)

    def run(self, index: int):
        """Run one cell as a learner does (select it, Ctrl+Enter) and wait until it has run."""
        from playwright.sync_api import TimeoutError as NotYet

        cell = self.cell(index)
        prompt = cell.locator(".jp-InputPrompt")
        for attempt in range(3):            # a keystroke can land before the notebook takes focus
            cell.scroll_into_view_if_needed()
            prompt.click()
            self.page.keyboard.press("Control+Enter")
            try:                            # "[ ]:" (cleared) becomes "[*]:", then "[n]:"
                self.page.wait_for_function("(p) => !/\\[ \\]/.test(p.textContent)", arg=prompt.element_handle(),
                                            timeout=10_000)
                break
            except NotYet:
                if attempt == 2:
                    raise
        self.page.wait_for_function("(p) => /\\[\\d+\\]/.test(p.textContent)", arg=prompt.element_handle(),
                                    timeout=CELL_TIMEOUT_MS)
        self.ran.add(index)
        return cell

    def run_code(self, code: str):
        """Append a code cell holding ``code`` at the end of the notebook and run it (the cells
        before it keep their indices); returns its index."""
        cells = self.page.locator(".jp-Notebook .jp-Cell")
        count = cells.count()
        cells.last.scroll_into_view_if_needed()
        cells.last.locator(".jp-InputPrompt").click()          # select the last cell (command mode)
        self.page.keyboard.press("Escape")
        self.page.keyboard.press("b")                          # a new code cell below it
        self.page.wait_for_function(f"() => document.querySelectorAll('.jp-Notebook .jp-Cell').length > {count}")
        new = cells.nth(count)
        new.locator(".jp-InputArea-editor").click()
        self.page.keyboard.insert_text(code)
        self.page.keyboard.press("Control+Enter")
        self.page.wait_for_function("(p) => /\\[\\d+\\]/.test(p.textContent)",
                                    arg=new.locator(".jp-InputPrompt").element_handle(), timeout=CELL_TIMEOUT_MS)
        return count

    def kernel_log(self) -> str:
        return self.lab.log_text()[self.log_start:]

    def close(self):
        self.page.close()
        self.lab.shut_down_kernels()


@pytest.fixture(scope="module")
def notebooks(jupyter_lab, browser):
    """Opens a notebook on first use, closing the one before (the tests come in notebook order)."""
    current: dict[str, Notebook] = {}

    def open_notebook(name: str) -> Notebook:
        if name not in current:
            for other in current.values():
                other.close()
            current.clear()
            current[name] = Notebook(jupyter_lab, browser, name)
        return current[name]

    yield open_notebook
    for notebook in current.values():
        notebook.close()


def subshells(lab) -> list[str]:
    """The kernel's subshells, asked on its control channel (JEP 91's list_subshell_request)."""
    import jupyter_client

    (session,) = lab.api("/api/sessions")
    client = jupyter_client.BlockingKernelClient(
        connection_file=str(lab.runtime / f"kernel-{session['kernel']['id']}.json"))
    client.load_connection_file()
    client.start_channels()
    try:
        client.control_channel.send(client.session.msg("list_subshell_request", {}))
        reply = client.control_channel.get_msg(timeout=30)
    finally:
        client.stop_channels()
    return reply["content"].get("subshell_id", [])


# ----------------------------------------------------------------------------- one panel

def describe(control) -> str:
    """A control's description as the page shows it."""
    label = control.locator("label.widget-label").first
    text = label.inner_text().strip("\u200b \n") if label.count() else ""   # a checkbox's is a zero-width space
    return text or control.locator("span").first.inner_text().strip()


def shown_value(control) -> str | bool:
    """What a control shows: a dropdown's choice, a slider's readout, a checkbox's tick."""
    kind = control.get_attribute("class")
    if "widget-dropdown" in kind:
        return control.locator("select").input_value()
    if "widget-checkbox" in kind:
        return control.locator("input").is_checked()
    return control.locator(".widget-readout").inner_text().strip()


def press(panel) -> str:
    """Press the panel's button and wait for the new result; returns its text."""
    result = panel.locator(".course-panel-result")
    result.evaluate("r => { for (const c of r.children) c.dataset.old = '1'; }")
    panel.locator(".widget-button").click()
    panel.page.wait_for_function(
        """(r) => r.querySelector(':scope > :not([data-old])') !== null
                  && !r.closest('.course-panel').querySelector('.course-panel-note').textContent.includes('Running')""",
        arg=result.element_handle(), timeout=PRESS_TIMEOUT_MS)
    return result.inner_text()


def settle(panel, action) -> str:
    """Do ``action`` (a control change) on a live panel and wait for the result it recomputes by
    itself; returns its text."""
    result = panel.locator(".course-panel-result")
    result.evaluate("r => { for (const c of r.children) c.dataset.old = '1'; }")
    action()
    panel.page.wait_for_function(
        """(r) => r.querySelector(':scope > :not([data-old])') !== null
                  && !r.closest('.course-panel').querySelector('.course-panel-note').textContent.includes('Running')""",
        arg=result.element_handle(), timeout=PRESS_TIMEOUT_MS)
    return result.inner_text()


def wait_for_stale_note(panel):
    panel.locator(".course-panel-note", has_text="Settings changed").wait_for(timeout=30_000)


def images(panel) -> list[bytes]:
    """The PNG bytes of each figure in the panel's result, as the page received them."""
    return [base64.b64decode(img.evaluate(
        """async (img) => { const blob = await (await fetch(img.src)).blob();
                            return await new Promise(done => { const r = new FileReader();
                              r.onload = () => done(r.result.split(',')[1]); r.readAsDataURL(blob); }); }"""))
        for img in panel.locator(".course-panel-result img").all()]


def replay(panel_source: str, settings: list[tuple[str, str | bool]]) -> list[bytes]:
    """The figures the panel shows at ``settings``, drawn outside the panel and the browser: the
    same panel is built here and pressed, and each ``course_lib.plots`` function it calls is called
    again with the same arguments as a notebook cell calls it (through pyplot), rendered to PNG."""
    import ipywidgets as w
    import matplotlib.pyplot as plt

    from course_lib import plots, widgets

    call = next(node for node in ast.walk(ast.parse(panel_source))
                if isinstance(node, ast.Call) and PANEL_CALL.match(ast.unparse(node)))
    panel = eval(compile(ast.Expression(call), "<panel cell>", "eval"), {"widgets": widgets})

    def walk(widget):
        for child in getattr(widget, "children", ()):
            yield from walk(child)
        yield widget

    controls = {c.description: c for c in walk(panel) if isinstance(c, w.ValueWidget) and c.description}
    for description, value in settings:
        control = controls[description]
        if isinstance(control, (w.Dropdown, w.SelectionSlider)):
            control.label = value
        elif isinstance(control, w.Checkbox):
            control.value = value
        else:
            control.value = type(control.value)(value)

    calls = []

    def recorded(function):
        def record(*args, **kwargs):
            calls.append((function, args, kwargs))
            return function(*args, **kwargs)
        return record

    originals = {name: f for name, f in vars(plots).items() if name.startswith("plot_")}
    with pytest.MonkeyPatch.context() as patch:
        for module in (plots, widgets):
            for name in originals.keys() & vars(module).keys():
                patch.setattr(module, name, recorded(originals[name]))
        next(c for c in walk(panel) if isinstance(c, w.Button)).click()
    shown = [bytes(c.value) for c in panel.children[-1].children if isinstance(c, w.Image)]
    if len(calls) != len(shown):          # a figure not from course_lib.plots: the panel's own, headless
        return shown
    outside = []
    for function, args, kwargs in calls:
        figure = function(*args, **{**kwargs, "pyplot": True})
        outside.append(plots.figure_png(figure))
        plt.close(figure)
    return outside


def check_figures(panel, panel_source: str, controls) -> int:
    """Each figure shown equals, pixel for pixel, the one drawn outside at the same settings."""
    import numpy as np
    from PIL import Image

    seen = images(panel)
    if not seen:
        return 0
    settings = [(describe(c), shown_value(c)) for c in controls]
    expected = replay(panel_source, settings)
    assert len(seen) == len(expected), f"{len(seen)} figures shown, {len(expected)} drawn outside the panel"
    for got, want in zip(seen, expected):
        got_image, want_image = (Image.open(io.BytesIO(b)).convert("RGB") for b in (got, want))
        assert got_image.size == want_image.size, "the figure in the panel is not the size of the same figure"
        different = int((np.asarray(got_image) != np.asarray(want_image)).any(axis=-1).sum())
        assert different == 0, (f"{different} of {got_image.width * got_image.height} pixels differ from the same "
                                f"figure drawn outside the panel at {settings}")
    return len(seen)


def check_shown_as_drawn(panel):
    """No message the course did not foresee; each figure at its natural size (one PNG pixel per CSS
    pixel, as a notebook cell shows it, unless the output is narrower); each dropdown wide enough
    for its longest entry."""
    assert not panel.locator(".course-panel-unexpected").count(), panel.inner_text()
    for img in panel.locator(".course-panel-result img").all():
        natural, shown = img.evaluate("i => [i.naturalWidth, i.getBoundingClientRect().width]")
        assert shown <= natural + 1, f"a figure stretched from {natural} to {shown} pixels wide"
    for select in panel.locator(".widget-dropdown select").all():
        needed, room = select.evaluate("""s => {
            const c = document.createElement('canvas').getContext('2d');
            c.font = getComputedStyle(s).font;
            const widest = Math.max(...[...s.options].map(o => c.measureText(o.text).width));
            return [widest, s.clientWidth - 24];    // the arrow and padding take about 24 pixels
        }""")
        assert needed <= room, f"a dropdown entry {needed:.0f} pixels wide is cut to {room:.0f}"


def move_slider_to(control, key: str):
    handle = control.locator(".noUi-handle")
    handle.focus()
    handle.press(key)


@pytest.mark.parametrize("notebook_name, panel_index", list(discover_panels()))
def test_panel_in_jupyterlab(notebook_name, panel_index, notebooks, jupyter_lab, screenshots):
    path = REPO / "notebooks" / notebook_name
    panel_source = dict(code_cells(path))[panel_index]
    notebook = notebooks(notebook_name)
    # Opened, before it runs, the panel cell shows the course's note, never a repr of widgets.
    on_opening = notebook.opened[panel_index]
    assert "VBox(" not in on_opening and (not on_opening.strip() or "run this cell to start it" in on_opening), \
        on_opening
    opened_png = screenshots / f"{Path(notebook_name).stem}-{PANEL_CALL.search(panel_source).group(1)}-opened.png"
    opened_png.write_bytes(notebook.opened_png[panel_index])
    SCREENSHOTS.append(opened_png)
    imports = panel_imports(path, panel_index)
    if imports is not None:
        if notebook.imports_cell is None:
            notebook.imports_cell = notebook.run_code(imports)
            notebook.ran.add(notebook.imports_cell)
        notebook.run(panel_index)
    else:
        for index in cells_needed(path, panel_index):
            if index not in notebook.ran:
                notebook.run(index)
    output = notebook.cell(panel_index).locator(".jp-OutputArea-output")
    panel = output.locator(".course-panel")
    panel.wait_for(timeout=60_000)
    assert "Loading widget" not in output.inner_text() and "VBox(" not in output.inner_text()
    name = f"{Path(notebook_name).stem}-{PANEL_CALL.search(panel_source).group(1)}"

    controls = panel.locator(CONTROLS).all()
    assert controls and panel.locator(".widget-button").count() == 1
    button = panel.locator(".widget-button")
    assert button.evaluate("b => b.scrollWidth <= b.clientWidth"), "the button's label is cut off"
    live = "course-panel-live" in panel.get_attribute("class")
    for control in controls:
        if "widget-hslider" in control.get_attribute("class"):
            move_slider_to(control, "Home")                  # the cheapest setting
    first = press(panel)                                     # (a live panel: after its own updates)
    assert not panel.locator(".course-panel-failure").count(), first
    check_shown_as_drawn(panel)
    figures = check_figures(panel, panel_source, controls)
    save_screenshot(panel, screenshots, f"{name}-before")

    kinds = {"dropdown": [c for c in controls if "widget-dropdown" in c.get_attribute("class")][-1:],
             "slider": [c for c in controls if "widget-hslider" in c.get_attribute("class")][:1],
             "checkbox": [c for c in controls if "widget-checkbox" in c.get_attribute("class")][:1]}
    before = first
    for kind, found in kinds.items():
        if not found:
            continue
        control = found[0]
        old_value = shown_value(control)

        def change():
            if kind == "dropdown":
                select = control.locator("select")
                options = select.evaluate("s => [...s.options].map(o => o.value)")
                select.select_option(index=(options.index(old_value) + 1) % len(options))
            elif kind == "slider":
                move_slider_to(control, "ArrowRight")
            else:
                control.locator("input").click()

        if live:
            updated = settle(panel, change)
            assert not panel.locator(".course-panel-note", has_text="Settings changed").count()
        else:
            change()
            wait_for_stale_note(panel)
            if before is first:
                save_screenshot(panel, screenshots, f"{name}-stale")
        new_value = shown_value(control)
        assert new_value != old_value, f"the {kind} {describe(control)!r} did not change"
        after = press(panel)
        if live:
            assert after == updated, "a live panel's press gives another result than its update"
        assert not panel.locator(".course-panel-failure").count(), after
        check_shown_as_drawn(panel)
        assert not panel.locator(".course-panel-note", has_text="Settings changed").count()
        assert after != before, f"changing the {kind} {describe(control)!r} did not change the result"
        if kind != "checkbox":
            assert str(new_value) in after, f"the result does not name the new {describe(control)} {new_value!r}"
        figures += check_figures(panel, panel_source, controls)
        before = after
    save_screenshot(panel, screenshots, f"{name}-after")

    # An impossible setting: a dropdown with nothing chosen. A message, never a traceback.
    def choose_nothing():
        panel.locator(".widget-dropdown select").first.evaluate(
            "s => { s.selectedIndex = -1; s.dispatchEvent(new Event('change', {bubbles: true})); }")

    if live:
        settle(panel, choose_nothing)
    else:
        choose_nothing()
        wait_for_stale_note(panel)
    message = press(panel)
    assert panel.locator(".course-panel-failure").count() == 1 and "must be" in message, message
    assert not panel.locator(".course-panel-unexpected").count(), message        # the course's words, not raw
    save_screenshot(panel, screenshots, f"{name}-bad-input")

    assert subshells(jupyter_lab), "comm messages did not go over a kernel subshell"
    for index in notebook.ran:
        assert "Traceback" not in notebook.cell(index).locator(".jp-OutputArea").inner_text()
    assert "Traceback" not in notebook.kernel_log(), notebook.kernel_log()[-3000:]
    assert not notebook.console_errors, notebook.console_errors
    print(f"{name}: {figures} figures checked against the same figure drawn outside the panel")
