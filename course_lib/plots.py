"""Matplotlib figures shared by the notebooks. Each function returns the ``Figure``; the notebook
shows it. Nothing here computes a result: it draws what ``measure`` and ``hardware`` returned.
Arguments are checked before a figure is created, so a bad call leaves no empty figure behind.

Two ways to make a figure. In a notebook cell, through pyplot (the default), so that
``plt.show()`` displays it. In a panel's button callback, with ``pyplot=False``: a bare
``Figure`` on its own Agg canvas that no global state knows of, turned into PNG bytes by
:func:`figure_png`. A callback must not touch pyplot: with JupyterLab's "comms over subshells"
(the default since 4.4, with ipykernel 7) it runs on a second thread while pyplot's display hooks
may draw the same figure, half-finished, on the first (jupyterlab/jupyterlab#19719)."""

from __future__ import annotations

import io

import matplotlib.pyplot as plt
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from .checks import check_type
from .hardware import Verdict
from .measure import ModelReport, format_bytes

__all__ = ["new_figure", "figure_png", "plot_layer_costs", "plot_fit_bars", "plot_device_matrix", "plot_history"]


def new_figure(figsize: tuple[float, float], pyplot: bool) -> Figure:
    """A figure of ``figsize`` inches: pyplot's (shown by ``plt.show()``), or a bare one on its
    own Agg canvas, untouched by pyplot's global state (safe on any thread)."""
    check_type(pyplot, "pyplot", bool, "True or False")
    if pyplot:
        return plt.figure(figsize=figsize)
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def figure_png(fig: Figure) -> bytes:
    """The figure as PNG bytes, cropped as Jupyter's inline backend crops (``bbox_inches="tight"``).
    Uses only the figure's own canvas, so it is safe in a widget callback on any thread.

    Raises:
        TypeError: ``fig`` is not a matplotlib Figure.
    """
    check_type(fig, "fig", Figure, "a matplotlib Figure")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def plot_layer_costs(report: ModelReport, *, pyplot: bool = True) -> Figure:
    """Parameters and MACs of each layer that has either: where the weights are vs where the work is.

    Raises:
        TypeError: ``report`` is not a ModelReport (from ``measure.report``), or ``pyplot`` not a bool.
    """
    check_type(report, "report", ModelReport, "a ModelReport (from measure.report)")
    layers = [t for t in report.layers if t.parameters or t.macs]
    names = [t.name for t in layers]
    fig = new_figure((10, 3.2), pyplot)
    axes = fig.subplots(1, 2)
    axes[0].barh(names, [t.parameters for t in layers], color="#4c72b0")
    axes[0].set_title(f"{report.name}: parameters per layer")
    axes[1].barh(names, [t.macs for t in layers], color="#dd8452")
    axes[1].set_title("MACs per layer (one input)")
    for ax in axes:
        ax.invert_yaxis()
        ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
    fig.tight_layout()
    return fig


def plot_fit_bars(verdict: Verdict, storage_label: str = "storage", memory_label: str = "memory", *,
                  pyplot: bool = True) -> Figure:
    """Two bars, used vs available: storage (flash) and working memory (SRAM/RAM). The device
    panel draws it with ``pyplot=False`` (see the module's docstring).

    Raises:
        TypeError: ``verdict`` is not a Verdict (from ``hardware.check_fit``), a label not a str,
            or ``pyplot`` not a bool.
    """
    check_type(verdict, "verdict", Verdict, "a Verdict (from hardware.check_fit)")
    check_type(storage_label, "storage_label", str, "a str")
    check_type(memory_label, "memory_label", str, "a str")
    fig = new_figure((7, 2.2), pyplot)
    ax = fig.subplots()
    rows = [(storage_label, verdict.storage_used, verdict.storage_available, verdict.storage_overhead),
            (memory_label, verdict.memory_used, verdict.memory_available, verdict.memory_overhead)]
    for i, (_, used, available, overhead) in enumerate(rows):
        fraction = used / available if available else float("inf")
        colour = "#2ca02c" if fraction <= 1 else "#d62728"
        length = min(fraction, 1.5)
        ax.barh(i, length, color=colour)
        label = f"{format_bytes(used)} / {format_bytes(available)} ({100 * fraction:.0f}%)"
        if overhead:                   # the bar holds the runtime's share too: say so
            label += f"\nincl. {format_bytes(overhead)} for the runtime"
        inside = length > 0.95         # a long bar carries its label inside, so it stays in the frame;
        ax.text(length - 0.02 if inside else 1.03, i, label, va="center", fontsize=8.5,   # else right of the line
                ha="right" if inside else "left", color="white" if inside else "black")
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_yticks(range(len(rows)), [r[0] for r in rows])
    ax.invert_yaxis()
    ax.set_xlim(0, 2.1)
    ax.set_xlabel("fraction of the device's capacity used (line = 100%)")
    ax.set_title(f"{verdict.device}: {'fits' if verdict.fits else 'does not fit'}")
    fig.tight_layout()
    return fig


def plot_device_matrix(reports: list[ModelReport], verdicts: dict[tuple[str, str], Verdict],
                       title: str = "", *, pyplot: bool = True) -> Figure:
    """A grid of models x devices, green where the model fits, red where it does not,
    annotated with the estimated latency.

    Args:
        reports: a non-empty list of ModelReport, one row each.
        verdicts: ``{(report.name, device name): Verdict}``, one for every report and device.

    Raises:
        TypeError: a wrong type for ``reports``, ``verdicts`` (or their items), ``title`` or ``pyplot``.
        ValueError: ``reports`` or ``verdicts`` is empty, or a (model, device) pair has no verdict.
    """
    if not isinstance(reports, (list, tuple)) or not all(isinstance(r, ModelReport) for r in reports):
        raise TypeError(f"reports must be a list of ModelReport, got {type(reports).__name__}")
    check_type(verdicts, "verdicts", dict, "a dict {(model name, device name): Verdict}")
    if not reports or not verdicts:
        raise ValueError("reports and verdicts must each hold at least one item")
    for key, verdict in verdicts.items():
        if not (isinstance(key, tuple) and len(key) == 2) or not isinstance(verdict, Verdict):
            raise TypeError(f"verdicts must map (model name, device name) to a Verdict, got {key!r}: "
                            f"{type(verdict).__name__}")
    check_type(title, "title", str, "a str")
    devices = list(dict.fromkeys(d for _, d in verdicts))
    missing = [(r.name, d) for r in reports for d in devices if (r.name, d) not in verdicts]
    if missing:
        raise ValueError(f"verdicts lacks (model, device) pairs {missing[:3]}; check_fit every "
                         "report on every device")
    fig = new_figure((1.6 * len(devices) + 2, 0.6 * len(reports) + 1.2), pyplot)
    ax = fig.subplots()
    for i, r in enumerate(reports):
        for j, d in enumerate(devices):
            v = verdicts[(r.name, d)]
            ax.add_patch(Rectangle((j, i), 1, 1, color="#b7e4c7" if v.fits else "#f4a6a6"))
            ax.text(j + 0.5, i + 0.5, f"{1000 * v.estimate.seconds:.2g} ms*" if v.fits else "no",
                    ha="center", va="center", fontsize=8)
    ax.set_xlim(0, len(devices))
    ax.set_ylim(len(reports), 0)
    ax.set_xticks([j + 0.5 for j in range(len(devices))], devices, rotation=25, ha="right", fontsize=8)
    ax.set_yticks([i + 0.5 for i in range(len(reports))], [r.name for r in reports], fontsize=8)
    ax.set_title(f"{title + ': ' if title else ''}fits? (* = roofline estimate of one inference, "
                 "not a measurement)", fontsize=9)
    fig.tight_layout()
    return fig


def plot_history(history: list[dict], title: str = "training", *, pyplot: bool = True) -> Figure:
    """Training loss and (if recorded) validation accuracy per epoch.

    Args:
        history: ``FitResult.history``: a non-empty list of dicts with ``"epoch"`` and
            ``"train_loss"`` (and ``"validation_accuracy"`` in every one, or in none).

    Raises:
        TypeError: ``history`` is not a list of dicts, ``title`` not a str, or ``pyplot`` not a bool.
        ValueError: ``history`` is empty or a record lacks a key.
    """
    if not isinstance(history, (list, tuple)) or not all(isinstance(h, dict) for h in history):
        raise TypeError(f"history must be a list of dicts (FitResult.history), got {type(history).__name__}")
    if not history:
        raise ValueError("history is empty; train for at least one epoch (epochs >= 1)")
    keys = ("epoch", "train_loss") + (("validation_accuracy",) if "validation_accuracy" in history[0] else ())
    for i, record in enumerate(history):
        missing = [k for k in keys if k not in record]
        if missing:
            raise ValueError(f"history[{i}] lacks {missing}")
    check_type(title, "title", str, "a str")
    epochs = [h["epoch"] for h in history]
    fig = new_figure((6, 3), pyplot)
    ax = fig.subplots()
    ax.plot(epochs, [h["train_loss"] for h in history], label="train loss")
    ax.set_xlabel("epoch")
    ax.set_title(title)
    if "validation_accuracy" in history[0]:
        ax2 = ax.twinx()
        ax2.plot(epochs, [h["validation_accuracy"] for h in history], color="#dd8452", label="validation accuracy")
        ax2.set_ylabel("validation accuracy")
    ax.legend(loc="upper center")
    fig.tight_layout()
    return fig
