"""Reports of a finished run (`make report RUN=...`), written to `runs/<run>/report/`:

    cv.csv, cv.md        per-fold and overall CV: accuracy and MAP@3 of the OOF predictions
    per_class.csv        per class: clips, accuracy (recall), precision, most frequent confusion
    confusion.png        confusion matrix of the OOF predictions, rows normalised
    learning_curves.png  training loss and held-out metric per epoch, one line per fold

Training writes the report as the run finishes; this module rebuilds it from the run folder alone
(its config, OOF predictions, fold summaries and histories, read through runs.py). Figures are drawn on
matplotlib's Agg canvas (no display, no pyplot state).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from competition.metrics import accuracy, map_at_k, top_k_indices
from competition.modeling.runs import Run
from competition.workspace import atomic_write_text


def cv_table(run: Run) -> pd.DataFrame:
    """One row per fold and an `overall` row: clips, accuracy, MAP@3, epochs run and the epoch kept."""
    oof = run.predictions("oof")
    true_id_of = dict(zip(oof.fnames, oof.true_ids.tolist()))
    rows = []
    for fold in run.folds():
        held_out = run.fold_predictions(fold, "oof")
        ids, probs = np.array([true_id_of[f] for f in held_out.fnames]), held_out.probs
        done = run.fold_summary(fold)
        rows.append({"fold": str(done["fold"]), "clips": len(ids), "accuracy": accuracy(ids, probs),
                     "map@3": map_at_k(ids, probs), "epochs_run": done["epochs_run"],
                     "kept_epoch": done.get("kept_epoch", done["best_epoch"])})
    ids, probs = oof.true_ids, oof.probs
    rows.append({"fold": "overall", "clips": len(ids), "accuracy": accuracy(ids, probs), "map@3": map_at_k(ids, probs),
                 "epochs_run": None, "kept_epoch": None})
    return pd.DataFrame(rows).astype({"epochs_run": "Int64", "kept_epoch": "Int64"})


def confusion_matrix(true_ids: np.ndarray, probs: np.ndarray, n_classes: int) -> np.ndarray:
    """counts[true, predicted] of the top-1 predictions."""
    counts = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(counts, (true_ids, top_k_indices(probs, 1)[:, 0]), 1)
    return counts


def per_class_table(counts: np.ndarray, labels: list[str]) -> pd.DataFrame:
    clips = counts.sum(axis=1)
    predicted = counts.sum(axis=0)
    correct = np.diag(counts)
    off_diagonal = counts - np.diag(correct)
    confused = off_diagonal.argmax(axis=1)
    return pd.DataFrame({
        "label": labels, "clips": clips,
        "accuracy": np.divide(correct, clips, out=np.full(len(labels), np.nan), where=clips > 0),
        "precision": np.divide(correct, predicted, out=np.full(len(labels), np.nan), where=predicted > 0),
        "most_confused_with": [labels[j] if off_diagonal[i, j] else "" for i, j in enumerate(confused)],
        "times": off_diagonal[np.arange(len(labels)), confused],
    })


def worst_confusions(counts: np.ndarray, labels: list[str], n: int = 10) -> pd.DataFrame:
    """The class pairs most often taken for each other (either way), by name, worst first."""
    both_ways = counts + counts.T
    rows = [{"pair": f"{labels[i]} / {labels[j]}", "confusions": int(both_ways[i, j]),
             "first as second": int(counts[i, j]), "second as first": int(counts[j, i])}
            for i in range(len(labels)) for j in range(i + 1, len(labels)) if both_ways[i, j]]
    rows.sort(key=lambda row: (-row["confusions"], row["pair"]))
    return pd.DataFrame(rows[:n], columns=["pair", "confusions", "first as second", "second as first"])


def markdown(table: pd.DataFrame) -> str:
    """A GitHub-style table (pandas' to_markdown needs the tabulate package)."""
    def cell(value) -> str:
        if value is None or pd.isna(value):
            return ""
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.astype(object).itertuples(index=False)]
    return "\n".join(lines) + "\n"


def plot_confusion(counts: np.ndarray, labels: list[str], path: Path, title: str) -> None:
    from matplotlib.figure import Figure

    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = max(5.0, 0.32 * len(labels) + 2.5)
    figure = Figure(figsize=(size + 1, size))
    axes = figure.add_subplot()
    image = axes.imshow(share, cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    axes.set_yticks(range(len(labels)), labels, fontsize=7)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title, fontsize=9)
    if len(labels) <= 25:
        for (i, j), n in np.ndenumerate(counts):
            if n:
                axes.text(j, i, str(n), ha="center", va="center", fontsize=6,
                          color="white" if share[i, j] > 0.5 else "black")
    figure.colorbar(image, ax=axes, fraction=0.046, label="share of the true class")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def plot_learning_curves(histories: dict[str, pd.DataFrame], metric: str, path: Path, title: str) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4))
    loss_axes, metric_axes = figure.subplots(1, 2)
    for fold, history in histories.items():
        loss_axes.plot(history["epoch"], history["loss"], label=fold)
        metric_axes.plot(history["epoch"], history[f"val_{metric}"], label=fold)
    loss_axes.set(xlabel="epoch", ylabel="training loss", title="training loss")
    metric_axes.set(xlabel="epoch", ylabel=f"held-out {metric}", title=f"held-out {metric} (one crop per clip)")
    metric_axes.legend(fontsize=7)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def write_report(run_dir: Path) -> Path:
    """(Re)build `run_dir/report/` from the run folder; returns the report folder."""
    run = Run(run_dir)
    config = run.config()
    oof = run.predictions("oof")
    labels, metric = config["labels"], config["metric"]
    report_dir = run.report_dir
    report_dir.mkdir(exist_ok=True)

    cv = cv_table(run)
    atomic_write_text(report_dir / "cv.csv", cv.to_csv(index=False))
    counts = confusion_matrix(oof.true_ids, oof.probs, len(labels))
    per_class = per_class_table(counts, labels)
    atomic_write_text(report_dir / "per_class.csv", per_class.to_csv(index=False))
    atomic_write_text(report_dir / "confused_pairs.csv", worst_confusions(counts, labels).to_csv(index=False))
    overall = cv.iloc[-1]
    title = f"{run.name}: OOF accuracy {overall['accuracy']:.4f}, MAP@3 {overall['map@3']:.4f}"
    plot_confusion(counts, labels, report_dir / "confusion.png", title)
    histories = {f"fold-{fold}": history for fold, history in run.histories().items()}
    plot_learning_curves(histories, metric, report_dir / "learning_curves.png", run.name)
    atomic_write_text(report_dir / "cv.md", f"# {run.name}\n\nexperiment `{config['experiment']}` "
                      f"(hash {config['hash']}) on `{config['dataset']}`; the dataset's metric is {metric}.\n\n"
                      f"## Cross-validation (out-of-fold predictions)\n\n{markdown(cv)}\n"
                      f"## Per class\n\n{markdown(per_class)}\n"
                      f"## Most confused pairs\n\n{markdown(worst_confusions(counts, labels))}\n"
                      f"![confusion matrix](confusion.png)\n\n![learning curves](learning_curves.png)\n")
    return report_dir
