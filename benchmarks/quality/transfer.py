"""UrbanSound8K fold 1 <-> 2 fine-tuned from the ESC-50 bases against the same recipes from scratch."""

from __future__ import annotations

from pathlib import Path

from benchmarks.quality.bases import Esc50Bases, fine_tune_name
from benchmarks.quality.bench import Bench, recipe_experiment
from benchmarks.quality.scores import FITTED, blend_scores, run_scores
from benchmarks.quality.settings import TARGETS, TRANSFER_GAIN, Protocol
from benchmarks.quality.tables import met, transfer_gains, transfer_table


def transfer_protocol(bench: Bench, protocol: Protocol, dataset, index, shared: Path) -> tuple[dict, str]:
    """The ESC-50 base (leakage guard on), then UrbanSound8K 1 <-> 2 from it and from scratch."""
    plan = bench.plan
    from competition.modeling.runs import Run

    bases = Esc50Bases(bench, shared)
    train_base = bases.train

    def describe_base(experiment, base) -> str:
        return bases.describe(experiment, base, dataset.name, index.train)

    def fine_tune(experiment, base) -> Path | None:
        return bench.train(dataset, index, experiment, base_model=base.model_path(1),
                           run_name=fine_tune_name(dataset, experiment, base))

    base_experiment, base_dir = train_base(plan.kit[0])
    recipe = recipe_experiment(plan.kit[0], protocol)
    scratch_dir = bench.train(dataset, index, recipe)
    scratch = f"scratch: {recipe.name}"
    rows = {}
    if scratch_dir:
        rows[scratch] = run_scores(scratch_dir, index, protocol)
    base_notes = [f"base not trained: {base_experiment.name}"]
    transferred = {}  # each view's fine-tuned run (the same recipe), for the blend
    if base_dir:
        base = Run(base_dir)
        base_notes = [describe_base(base_experiment, base)]
        for label, changes in {"same recipe": {}, **plan.transfer_variants}.items():
            experiment = recipe.with_overrides(train=changes)
            run_dir = fine_tune(experiment, base)
            if run_dir:
                name = f"transfer: {label}"
                rows[name] = run_scores(run_dir, index, protocol)
                rows[name]["epochs"] = experiment.train.epochs
                if not changes:
                    transferred[recipe.name] = run_dir
    # The default blend's other views, each from its own ESC-50 base: the blend transferred against the
    # blend from scratch.
    scratch_views = {recipe.name: scratch_dir}
    for recipe_path in plan.kit[1:]:
        view_base_experiment, view_base_dir = train_base(recipe_path)
        view = recipe_experiment(recipe_path, protocol)
        scratch_views[view.name] = bench.train(dataset, index, view)
        if view_base_dir:
            view_base = Run(view_base_dir)
            base_notes.append(describe_base(view_base_experiment, view_base))
            transferred[view.name] = fine_tune(view, view_base)
        else:
            base_notes.append(f"base not trained: {view_base_experiment.name}")
    blend_rows = {}
    names = [path.stem for path in plan.kit]
    for kind, views in (("scratch", scratch_views), ("transfer", transferred)):
        if all(views.get(name) for name in names) and (kind == "scratch" or blend_rows):
            members = [views[name] for name in names]
            blend_rows[f"{kind}: {' + '.join(names)} (blend)"] = blend_scores(members, index, protocol)
    if len(blend_rows) == 2:  # started apart, the scratch and the transferred views may err apart: all blended
        six = [*(scratch_views[name] for name in names), *(transferred[name] for name in names)]
        blend_rows[f"scratch + transfer: {len(six)} views (blend)"] = blend_scores(six, index, protocol)
        blend_rows[f"scratch + transfer: {len(six)} views {FITTED}"] = blend_scores(six, index, protocol, fitted=True)
    view_notes = []
    for name, run_dir in transferred.items():  # each view alone, transferred against from scratch
        if run_dir and scratch_views.get(name):
            alone = {kind: run_scores(run, index, protocol)["mean"]["accuracy"]
                     for kind, run in (("scratch", scratch_views[name]), ("transfer", run_dir))}
            view_notes.append(f"{name} alone: scratch {alone['scratch']:.4f}, transfer {alone['transfer']:.4f} "
                              f"({100 * (alone['transfer'] - alone['scratch']):+.1f})")
    base_note = "\n".join(base_notes)
    text = (f"\n{protocol.title}: accuracy per held-out fold, mean over folds, and the gain over scratch in "
            f"points ({protocol.epochs} epochs unless the row says, last epoch kept)\n{base_note}\n")
    if scratch in rows:
        text += transfer_table(rows, scratch, protocol) + "\n"
        gains = transfer_gains(rows, scratch, protocol)
        verdicts = [f"{name.split(': ')[1]} {rows[name]['mean']['accuracy']:.4f} "
                    f"{met(rows[name]['mean']['accuracy'], TARGETS['urbansound8k'])}, gain "
                    f"{100 * gains[name]['mean']:+.1f} {met(gains[name]['mean'], TRANSFER_GAIN)}"
                    for name in rows if name != scratch]
        text += (f"target transfer mean accuracy >= {TARGETS['urbansound8k']:.2f} and gain >= "
                 f"{100 * TRANSFER_GAIN:+.0f} points: {'; '.join(verdicts) or 'nothing finished'}")
        if blend_rows:
            scratch_blend = next(iter(blend_rows))
            text += (f"\nthe default blend, every view from its own ESC-50 base, against the blend from scratch "
                     f"(gains over the scratch blend)\n{transfer_table(blend_rows, scratch_blend, protocol)}")
            rows.update(blend_rows)
            for transfer_blend in list(blend_rows)[1:]:
                gain = transfer_gains(blend_rows, scratch_blend, protocol)[transfer_blend]["mean"]
                accuracy = blend_rows[transfer_blend]["mean"]["accuracy"]
                text += (f"\ntarget: {transfer_blend} {accuracy:.4f} {met(accuracy, TARGETS['urbansound8k'])}, "
                         f"gain {100 * gain:+.1f} {met(gain, TRANSFER_GAIN)}")
        if view_notes:
            text += "\n" + "; ".join(view_notes)
    else:
        text += "scratch run not finished"
    return rows, text
