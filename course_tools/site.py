"""The executed course as a static website, built offline from the committed notebooks::

    python3 -m course_tools.site build --out site/

writes one HTML page per notebook (outputs, figures, LaTeX, and each widget panel as its
recorded state), an ``index.html`` that lists the notebooks with what each teaches, its run time
and its headline results (read from the notebook: its title cell, its cells' execution times,
and its check cells and their output), and the downloads: each executed notebook and its student
version (solutions and outputs stripped by :mod:`course_tools.student`).

Nothing is fetched at view time. The pages load no script from a network: MathJax 2 is copied
into the site from the ``jupyter-server-mathjax`` package when it is installed (the ``test``
extra installs it), and renders the maths as SVG; without it, the LaTeX source stays on the page
as text. Widget panels are drawn once, at build time, as static HTML: from the widget state saved in
the notebook where there is one, else (the course's notebooks save none, so that a notebook opened
in JupyterLab shows "run this cell" rather than a dead panel) from the panel built again by the
cell's own call, before any press. The state is embedded too, as nbconvert embeds it, so the pages
need no widget script; they show the panel's controls and do not run.
"""

from __future__ import annotations

import argparse
import datetime
import html
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from .student import build_student_notebooks

__all__ = ["MATHJAX_CONFIG", "PAGE_TEMPLATE", "STYLE", "SNAPSHOT_STYLE", "NotebookEntry", "read_entry",
           "widget_snapshot", "PANEL_CALL", "panel_states", "build_site", "main"]

MATHJAX_CONFIG = """<script type="text/x-mathjax-config">
MathJax.Hub.Config({
  tex2jax: {inlineMath: [["$", "$"], ["\\\\(", "\\\\)"]], displayMath: [["$$", "$$"], ["\\\\[", "\\\\]"]],
            processEscapes: true, processEnvironments: true},
  "HTML-CSS": {availableFonts: [], preferredFont: null, imageFont: null, webFont: "STIX-Web",
               // MathJax's own probe font is url('about:blank'), which Chromium reports as a CORS error
               styles: {"@font-face": {"font-family": "MathJax_Blank", src: "local('MathJax_Blank')"}}},
  messageStyle: "none", showMathMenu: false
});
</script>
<script src="_static/mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe"></script>"""

PAGE_TEMPLATE = r"""{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{{ resources.course_mathjax }}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block body_header -%}
{{ super() }}
<nav class="course-nav">{{ resources.course_nav }}</nav>
{%- endblock body_header -%}
{%- block data_widget_view scoped -%}
<div class="jp-OutputArea-output course-widget-snapshot {{ extra_class }}">
{{ output.data['application/vnd.jupyter.widget-view+json'] | widget_snapshot }}
</div>
{%- endblock data_widget_view -%}
"""

STYLE = """body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem;
       line-height: 1.5; color: #1f2328; }
.notebook { border-top: 1px solid #d0d7de; padding: 1rem 0; }
.meta { color: #57606a; }
.checks li { margin: .2rem 0; }
pre.output { background: #f6f8fa; padding: .5rem; }
"""

SNAPSHOT_STYLE = """<link rel="icon" href="data:,">
<style>
.course-nav { padding: .5rem 1rem; border-bottom: 1px solid #d0d7de; margin-bottom: 1rem;
              font-family: system-ui, sans-serif; }
.course-widget-snapshot .snapshot { border: 1px dashed #d0d7de; padding: .5rem; display: inline-block;
                                    font-family: var(--jp-ui-font-family); font-size: var(--jp-ui-font-size1); }
.course-widget-snapshot .snapshot-note { color: #57606a; font-size: 85%; }
.course-widget-snapshot .snapshot-row { display: flex; flex-wrap: wrap; gap: .25rem 1.5rem; margin: .2rem 0; }
.course-widget-snapshot .snapshot-col { display: flex; flex-direction: column; gap: .2rem; }
.course-widget-snapshot label { margin-right: .4rem; }
</style>"""


# ----------------------------------------------------------------------------- reading a notebook

@dataclass(frozen=True)
class NotebookEntry:
    """What the index says of one notebook, all read from the notebook itself."""
    stem: str
    title: str
    survey: str
    objectives: list[str]          # Markdown, one item each
    stated_time: str               # the title cell's "Time to run." sentence
    measured_seconds: float | None  # first cell started to last cell replied, at its last execution
    executed_on: str | None
    claims: list[str]              # what the check cells assert, from their comments
    check_output: list[str]        # what the check cells printed (or the error they raised)


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _output_lines(cell: dict) -> list[str]:
    lines = []
    for output in cell.get("outputs", []):
        if output["output_type"] == "stream":
            lines += "".join(output["text"]).splitlines()
        elif output["output_type"] == "error":
            lines.append(f"{output['ename']}: {output['evalue']}")
        elif "text/plain" in output.get("data", {}):
            lines += "".join(output["data"]["text/plain"]).splitlines()
    return [line for line in lines if line.strip()]


def _execution_span(cells: list[dict]) -> tuple[float | None, str | None]:
    """Seconds from the first code cell's start to the last one's reply, from the timings
    nbclient (or JupyterLab, when asked to) records in each cell's metadata."""
    def moment(cell, key):
        stamp = cell.get("metadata", {}).get("execution", {}).get(key)
        return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")) if stamp else None

    code = [c for c in cells if c["cell_type"] == "code"]
    starts = [t for t in (moment(c, "iopub.execute_input") for c in code) if t]
    ends = [t for t in (moment(c, "shell.execute_reply") for c in code) if t]
    if not starts or not ends:
        return None, None
    return (max(ends) - min(starts)).total_seconds(), min(starts).date().isoformat()


def read_entry(path: Path) -> NotebookEntry:
    """The index entry of the notebook at ``path``: its title cell (first heading, the survey line,
    the learning objectives, the "Time to run." sentence), its execution timings, and the cells
    after its "Checks" heading (their comments and what they printed)."""
    cells = json.loads(path.read_text())["cells"]
    title_cell = _source(cells[0])
    heading = re.search(r"^#\s+(.+)$", title_cell, re.M)
    survey = re.search(r"^\*Survey section:?\s*(.+?)\*\s*$", title_cell, re.M)
    objectives = re.search(r"\*\*Learning objectives\.\*\*.*?\n((?:\s*\d+\..*\n?(?:\s{2,}\S.*\n?)*)+)", title_cell)
    stated = re.search(r"\*\*Time to run\.\*\*\s*(.+?)(?:\n\n|$)", title_cell, re.S)
    claims, printed = [], []
    in_checks = False
    for cell in cells:
        if cell["cell_type"] == "markdown" and re.match(r"#+\s", _source(cell)):
            in_checks = bool(re.match(r"#+\s+(\d+\.\s*)?Checks\b", _source(cell)))
        elif in_checks and cell["cell_type"] == "code":
            comment = []
            for line in _source(cell).splitlines() + [""]:
                stripped = line.strip()
                if stripped.startswith("# ") and not stripped.startswith(("# BEGIN", "# END")):
                    comment.append(stripped[2:])
                elif comment:
                    claims.append(" ".join(comment))
                    comment = []
            printed += _output_lines(cell)
    seconds, day = _execution_span(cells)
    return NotebookEntry(
        stem=path.stem, title=heading.group(1).strip() if heading else path.stem,
        survey=survey.group(1).strip() if survey else "",
        objectives=[re.sub(r"\s+", " ", item).strip()
                    for item in re.split(r"\n\s*\d+\.\s+", "\n" + objectives.group(1))[1:]] if objectives else [],
        stated_time=re.sub(r"\s+", " ", stated.group(1)).strip() if stated else "",
        measured_seconds=seconds, executed_on=day, claims=claims, check_output=printed)


# ----------------------------------------------------------------------------- widget panels, drawn once

def widget_snapshot(view: dict, state: dict) -> str:
    """Static HTML of a widget view as recorded in ``state`` (the notebook's saved widget state):
    boxes, dropdowns, sliders, checkboxes, buttons (disabled), HTML, images and Output widgets."""
    models = state.get("state", {})

    def draw(model_id: str) -> str:
        model = models.get(model_id)
        if model is None:
            return "<em>(a widget whose state was not saved)</em>"
        name, s = model["model_name"], model["state"]
        description = html.escape(str(s.get("description", "")))
        label = f"<label>{description}</label>" if description else ""
        if name in ("VBoxModel", "HBoxModel", "BoxModel", "GridBoxModel"):
            children = "".join(draw(child.removeprefix("IPY_MODEL_")) for child in s.get("children", []))
            return f"<div class='{'snapshot-row' if name == 'HBoxModel' else 'snapshot-col'}'>{children}</div>"
        if name in ("DropdownModel", "SelectModel", "SelectionSliderModel", "ToggleButtonsModel", "RadioButtonsModel"):
            labels, index = s.get("_options_labels", []), s.get("index")
            options = "".join(f"<option{' selected' if i == index else ''}>{html.escape(o)}</option>"
                              for i, o in enumerate(labels))
            return f"<span>{label}<select disabled>{options}</select></span>"
        if name in ("IntSliderModel", "FloatSliderModel", "IntTextModel", "FloatTextModel"):
            return (f"<span>{label}<input type='range' disabled min='{s.get('min', 0)}' max='{s.get('max', 100)}' "
                    f"step='{s.get('step', 1)}' value='{s.get('value')}'> {html.escape(str(s.get('value')))}</span>")
        if name == "CheckboxModel":
            return f"<span><input type='checkbox' disabled{' checked' if s.get('value') else ''}> {description}</span>"
        if name == "ButtonModel":
            return f"<span><button disabled>{description}</button></span>"
        if name in ("HTMLModel", "HTMLMathModel"):
            return f"<div>{s.get('value', '')}</div>"
        if name == "LabelModel":
            return f"<span>{html.escape(str(s.get('value', '')))}</span>"
        if name == "ImageModel":
            data = next((b["data"] for b in model.get("buffers", []) if b.get("path") == ["value"]), "")
            return f"<img alt='a figure recorded in the panel' src='data:image/{s.get('format', 'png')};base64,{data}'>"
        if name == "OutputModel":
            return "".join(_draw_output(o) for o in s.get("outputs", []))
        return f"<em>({html.escape(name.removesuffix('Model'))} widget)</em>"

    body = draw(view.get("model_id", ""))
    return (f"<div class='snapshot'>{body}<div class='snapshot-note'>The panel's controls, as it opens; open "
            f"the notebook in JupyterLab and run the cell to use it.</div></div>")


PANEL_CALL = re.compile(r"\bwidgets\.\w+_panel\(")


def panel_states(nb) -> dict:
    """The widget state of each panel a notebook shows, built again from its cell's call (the
    call's own expression, evaluated with ``course_lib.widgets``, nothing else of the cell): the
    panel as it opens, before any press. Each panel output's ``model_id`` is pointed at the new
    panel. ``{}`` when the notebook shows no panel."""
    import ast

    from ipywidgets.embed import dependency_state

    from course_lib import widgets

    states = {}
    for cell in nb.cells:
        views = [o for o in cell.get("outputs", []) if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
        if cell.cell_type != "code" or not views or not PANEL_CALL.search(cell.source):
            continue
        call = next(node for node in ast.walk(ast.parse(cell.source))
                    if isinstance(node, ast.Call) and PANEL_CALL.match(ast.unparse(node)))
        panel = eval(compile(ast.Expression(call), "<panel cell>", "eval"), {"widgets": widgets})
        states.update(dependency_state(panel))
        for view in views:
            view["data"]["application/vnd.jupyter.widget-view+json"]["model_id"] = panel.model_id
    return {"version_major": 2, "version_minor": 0, "state": states} if states else {}


def _draw_output(output: dict) -> str:
    data = output.get("data", {})
    if output.get("output_type") == "stream":
        return f"<pre>{html.escape(''.join(output['text']))}</pre>"
    if "image/png" in data:
        return f"<img alt='a figure' src='data:image/png;base64,{''.join(data['image/png']).strip()}'>"
    if "text/html" in data:
        return "".join(data["text/html"])
    if "text/plain" in data:
        return f"<pre>{html.escape(''.join(data['text/plain']))}</pre>"
    return ""


# ----------------------------------------------------------------------------- pages

def _notebook_page(path: Path, mathjax: bool) -> str:
    """One notebook as HTML with nbconvert's JupyterLab template, less every external script."""
    import jinja2
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(path, as_version=4)
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    if not state:
        state = panel_states(nb)
        if state:
            nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": state}
    exporter = HTMLExporter(template_name="lab", extra_loaders=[jinja2.DictLoader({"course.html.j2": PAGE_TEMPLATE})],
                            template_file="course.html.j2")
    exporter.register_filter("widget_snapshot", lambda view: widget_snapshot(view, state))
    nav = (f"<a href='index.html'>&larr; All notebooks</a> &middot; download: "
           f"<a href='notebooks/{path.name}' download>this notebook, executed</a> &middot; "
           f"<a href='student/{path.name}' download>the student version</a>")
    resources = {"course_nav": nav,
                 "course_mathjax": (MATHJAX_CONFIG if mathjax else "") + SNAPSHOT_STYLE}
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    return body


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"


def _inline_markdown(text: str) -> str:
    """One line of Markdown as inline HTML (no enclosing paragraph)."""
    from nbconvert.filters import markdown2html

    return re.sub(r"^<p>(.*)</p>\s*$", r"\1", markdown2html(text).strip(), flags=re.S)


def _index_page(entries: list[NotebookEntry], mathjax: bool) -> str:
    items = []
    for e in entries:
        measured = (f" Its last run took <b>{_duration(e.measured_seconds)}</b> ({e.executed_on})."
                    if e.measured_seconds is not None else "")
        objectives = "".join(f"<li>{_inline_markdown(o)}</li>" for o in e.objectives)
        claims = "".join(f"<li>{_inline_markdown(c)}</li>" for c in e.claims)
        printed = html.escape("\n".join(e.check_output)) or "(nothing printed)"
        items.append(f"""<section class="notebook" id="{e.stem}">
<h2><a href="{e.stem}.html">{html.escape(e.title)}</a></h2>
<p class="meta">{html.escape(e.survey)}</p>
<p><b>Time to run:</b> {_inline_markdown(e.stated_time)}{measured}</p>
<p><b>After it you can</b></p><ol>{objectives}</ol>
<details><summary><b>Headline results</b>, asserted by its check cells, which printed:
<code>{printed}</code></summary><ul class="checks">{claims}</ul></details>
<p>Download: <a href="notebooks/{e.stem}.ipynb" download>executed notebook</a> &middot;
<a href="student/{e.stem}.ipynb" download>student version</a> (solutions and outputs removed)</p>
</section>""")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Model compression, hands on</title><link rel="icon" href="data:,"><style>{STYLE}</style>
{MATHJAX_CONFIG if mathjax else ""}</head>
<body><main>
<h1>Model compression, hands on</h1>
<p>An executable course: one notebook per technique, run top to bottom on a 2-core CPU. Each page below is
the notebook as it last ran, outputs included; the student versions have the exercises left for you.
Every entry is read from its notebook.</p>
<p>For teachers: the <a href="instructors.html">instructor's guide</a> (session plans, workshop paths, grading,
rubrics). For learners: <a href="faq.html">questions learners ask</a>.</p>
{"".join(items)}
</main></body></html>
"""


DOCUMENTS = {"INSTRUCTORS.md": ("instructors.html", "Instructor's guide"), "FAQ.md": ("faq.html", "Questions learners ask")}


def _document_page(path: Path, title: str, mathjax: bool) -> str:
    """A Markdown document of the repository (the instructor's guide, the FAQ) as a page; links between
    the documents point to their pages."""
    from nbconvert.filters import markdown2html

    text = path.read_text(encoding="utf-8")
    for name, (page, _) in DOCUMENTS.items():
        text = text.replace(f"]({name})", f"]({page})")
    text = re.sub(r"\[([^\]]+)\]\((?!https?:)[^)]+\.md\)", r"\1", text)      # other files of the repository: no page
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title><link rel="icon" href="data:,"><style>{STYLE}</style>
{MATHJAX_CONFIG if mathjax else ""}</head>
<body><main><p><a href="index.html">&larr; the course</a></p>
{markdown2html(text)}
</main></body></html>
"""


def _mathjax_folder() -> Path | None:
    try:
        import jupyter_server_mathjax
    except ImportError:
        return None
    folder = Path(jupyter_server_mathjax.__file__).parent / "static"
    return folder if (folder / "MathJax.js").exists() else None


def build_site(notebooks: Path | str, out: Path | str) -> list[Path]:
    """Build the site from every ``*.ipynb`` in ``notebooks`` into ``out``; returns the pages.

    Raises:
        ValueError: ``notebooks`` is not a folder with notebooks, or ``out`` is that folder.
    """
    notebooks, out = Path(notebooks), Path(out)
    paths = sorted(notebooks.glob("*.ipynb")) if notebooks.is_dir() else []
    if not paths:
        raise ValueError(f"notebooks must be a folder holding .ipynb files, got {notebooks}")
    if out.resolve() == notebooks.resolve():
        raise ValueError("out must differ from the notebooks folder")
    out.mkdir(parents=True, exist_ok=True)
    mathjax = _mathjax_folder()
    if mathjax is not None:
        shutil.copytree(mathjax, out / "_static" / "mathjax", dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("localization", "*.py"))
    (out / "notebooks").mkdir(exist_ok=True)
    pages = []
    for path in paths:
        shutil.copyfile(path, out / "notebooks" / path.name)
        page = out / f"{path.stem}.html"
        page.write_text(_notebook_page(path, mathjax is not None), encoding="utf-8")
        pages.append(page)
    build_student_notebooks(notebooks, out / "student")
    for name, (page, title) in DOCUMENTS.items():
        if (notebooks.parent / name).is_file():
            (out / page).write_text(_document_page(notebooks.parent / name, title, mathjax is not None), encoding="utf-8")
            pages.append(out / page)
    index = out / "index.html"
    index.write_text(_index_page([read_entry(p) for p in paths], mathjax is not None), encoding="utf-8")
    return [index, *pages]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m course_tools.site",
                                     description="Build the static site of the executed course.")
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="one page per notebook, an index, the student versions")
    build.add_argument("--notebooks", default="notebooks", help="folder of executed notebooks")
    build.add_argument("--out", default="site", help="folder to write the site to")
    args = parser.parse_args(argv)
    pages = build_site(args.notebooks, args.out)
    print(f"wrote {len(pages)} pages to {args.out}; open {Path(args.out) / 'index.html'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
