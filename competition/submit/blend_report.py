"""The report of a blend (`make report RUN=submissions/<name>.csv`): what the submission's blend gets
right and wrong on the out-of-fold predictions, written to `submissions/<name>.report/`:

    per_class.csv        per class: clips, accuracy (recall), precision, most frequent confusion
    confused_pairs.csv   the class pairs most often taken for each other, by name
    members.csv          each member run's OOF score and weight, and the blend's
    confusion.png        confusion matrix of the blend's OOF predictions, rows normalised
    report.md            all of it in one page

The blend's OOF predictions are made as its CV score was: with fitted weights, each fold blended with
weights fitted on the other folds; with equal weights, the plain geometric mean.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from competition.metrics import accuracy, map_at_k
from competition.modeling.inference import geometric_mean
from competition.modeling.report import confusion_matrix, markdown, per_class_table, plot_confusion, worst_confusions
from competition.submit.ensemble import EnsembleError, clip_folds, load_run, out_of_fold_blend
from competition.submit.submission import read_record
from competition.workspace import atomic_write_text


def report_dir_of(csv_path: Path) -> Path:
    return Path(csv_path).with_suffix(".report")


def write_blend_report(csv_path: Path, runs_dir: Path) -> Path:
    """(Re)build the report of the blend behind `csv_path` from its record and its member runs."""
    record = read_record(csv_path)
    members = [load_run(Path(runs_dir) / member["run"]) for member in record["members"]]
    first = members[0]
    for member in members[1:]:
        if member["oof_fnames"] != first["oof_fnames"]:
            raise EnsembleError(f"{member['dir']}: clips differ from {first['dir']}; not the runs of this blend")
    labels, true_ids = first["config"]["labels"], first["true_ids"]
    oofs = [member["oof"] for member in members]
    if record.get("weights") == "fitted":
        blend = out_of_fold_blend(oofs, true_ids, clip_folds(first["dir"], first["oof_fnames"]))
    else:
        blend = geometric_mean(oofs, [member["weight"] for member in record["members"]])
    counts = confusion_matrix(true_ids, blend, len(labels))
    per_class = per_class_table(counts, labels)
    pairs = worst_confusions(counts, labels)
    rows = [{"member": spec["run"], "weight": spec["weight"], "accuracy": accuracy(true_ids, member["oof"]),
             "map@3": map_at_k(true_ids, member["oof"])} for spec, member in zip(record["members"], members)]
    rows.append({"member": "blend", "weight": float("nan"), "accuracy": accuracy(true_ids, blend),
                 "map@3": map_at_k(true_ids, blend)})
    scores = pd.DataFrame(rows)
    folder = report_dir_of(csv_path)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "per_class.csv", per_class.to_csv(index=False))
    atomic_write_text(folder / "confused_pairs.csv", pairs.to_csv(index=False))
    atomic_write_text(folder / "members.csv", scores.to_csv(index=False))
    title = (f"{Path(csv_path).stem} ({len(members)} runs, {record.get('weights', 'equal')} weights): OOF accuracy "
             f"{accuracy(true_ids, blend):.4f}, MAP@3 {map_at_k(true_ids, blend):.4f}")
    plot_confusion(counts, labels, folder / "confusion.png", title)
    atomic_write_text(folder / "report.md", f"# {title}\n\nOut-of-fold predictions of the blend behind "
                      f"`{Path(csv_path).name}`, made as its CV score was.\n\n## Members\n\n{markdown(scores)}\n"
                      f"## Most confused pairs\n\n{markdown(pairs)}\n## Per class\n\n{markdown(per_class)}\n"
                      "![confusion matrix](confusion.png)\n")
    return folder
