"""Matplotlib figures of a run: loss and accuracy per epoch, and the confusion matrix.

Built with matplotlib.figure.Figure (no pyplot state), so they can be drawn from any thread.
"""

from __future__ import annotations

from typing import Sequence

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .train import EpochStats


def _axes(title: str, ylabel: str, epochs: int, done: int) -> tuple[Figure, object]:
    fig = Figure(figsize=(5.2, 3.2), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    # The planned epochs give a stable axis to fill; a long run shows the epochs done so far instead.
    ax.set_xlim(0.5, max(2, epochs if epochs <= 50 else done) + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    return fig, ax


def _series(history: Sequence[EpochStats], attr: str) -> tuple[list[int], list[float]]:
    pts = [(h.epoch + 1, getattr(h, attr)) for h in history if getattr(h, attr) is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def loss_figure(history: Sequence[EpochStats], epochs: int) -> Figure:
    fig, ax = _axes("Loss", "cross-entropy", epochs, len(history))
    for attr, label in (("train_loss", "training"), ("val_loss", "validation")):
        x, y = _series(history, attr)
        ax.plot(x, y, marker="o", markersize=3, label=label)
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper right")
    return fig


def accuracy_figure(history: Sequence[EpochStats], epochs: int) -> Figure:
    fig, ax = _axes("Accuracy", "accuracy", epochs, len(history))
    for attr, label in (("train_acc", "training"), ("val_acc", "validation")):
        x, y = _series(history, attr)
        ax.plot(x, y, marker="o", markersize=3, label=label)
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower right")
    return fig


def confusion_figure(confusion: Sequence[Sequence[int]], classes: Sequence[str]) -> Figure:
    n = len(classes)
    size = min(7.0, 2.4 + 0.5 * n)
    fig = Figure(figsize=(size, size * 0.85), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(confusion, cmap="Blues")
    ax.set_xticks(range(n), labels=classes, rotation=45 if n > 3 else 0)
    ax.set_yticks(range(n), labels=classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = max((max(row) for row in confusion), default=0)
    for i in range(n):
        for j in range(n):
            v = confusion[i][j]
            ax.text(j, i, str(v), ha="center", va="center", color="white" if v > top / 2 else "black")
    fig.colorbar(im, ax=ax, shrink=0.8)
    return fig
