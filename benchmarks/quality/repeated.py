"""The FSD subset on repeated stratified folds: every recipe on the same folds per repeat, out-of-fold
MAP@3 per repeat; the candidates alone and in the blend."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks.quality.bench import Bench, recipe_experiment
from benchmarks.quality.scores import (
    fitted_name,
    fold_probs,
    prediction_ablations,
    repeat_blend,
    repeat_oof,
    repeat_scores,
    train_seconds,
)
from benchmarks.quality.settings import FSD_MARGIN_OVER_PEER, TARGETS, Protocol
from benchmarks.quality.tables import met, repeat_table


def repeated_protocol(bench: Bench, protocol: Protocol, dataset, index) -> tuple[dict, str]:
    """The FSD subset: every recipe on the same repeated stratified folds; OOF MAP@3 per repeat."""
    plan = bench.plan

    workspace = bench.workspace
    true_ids = index.train["label"].map(dataset.label_to_id).to_numpy()
    # The default recipe and the peer first, then the other views, then the candidates.
    recipes = {f"kit: {plan.kit[0].stem}": plan.kit[0], f"peer: Zafar kernel ({plan.peer.stem})": plan.peer,
               **{f"kit: {recipe.stem}": recipe for recipe in plan.kit[1:]}}
    runs: dict[str, dict[int, Path | None]] = {}
    experiments: dict[str, dict] = {}
    for name, recipe in recipes.items():
        experiments[name] = {seed: recipe_experiment(recipe, protocol, fold_seed=seed) for seed in protocol.seeds}
    candidates = {}
    for label, (features, model, train) in plan.fsd_candidates.items():
        candidates[f"candidate: {plan.kit[0].stem}, {label}"] = {
            seed: recipe_experiment(plan.kit[0], protocol, fold_seed=seed, features=features, model=model, **train)
            for seed in protocol.seeds}
    for recipe in plan.fsd_extra_views:
        candidates[f"zoo: {recipe.stem}"] = {seed: recipe_experiment(recipe, protocol, fold_seed=seed)
                                             for seed in protocol.seeds}
    for label, changes in ({} if bench.quick else plan.training_ablations).items():
        candidates[f"ablation: {plan.kit[0].stem} {label}"] = {
            seed: recipe_experiment(plan.kit[0], protocol, fold_seed=seed, **changes) for seed in protocol.seeds}
    # One repeat of every recipe before the next, the candidates last (the zoo's views and the ablations
    # before the recipe candidates): a partial run has whole repeats.
    later = dict(sorted(candidates.items(), key=lambda item: item[0].startswith("candidate: ")))
    for group in (experiments, later):
        for seed in protocol.seeds:
            for name, by_seed in group.items():
                runs.setdefault(name, {})[seed] = bench.train(dataset, index, by_seed[seed])
    experiments.update(candidates)

    def oof(run_dir: Path, seed: int) -> tuple[np.ndarray, np.ndarray]:
        return repeat_oof(run_dir, workspace, dataset, index, protocol, seed)

    done = {name: by_seed for name, by_seed in runs.items() if all(by_seed.values())}
    # A candidate (or zoo view, or ablation) with some repeats finished is shown on those (its row says which).
    partial = {name: {seed: run for seed, run in by_seed.items() if run} for name, by_seed in runs.items()
               if name in candidates and name not in done and any(by_seed.values())}
    rows = {}
    kit_names = [f"kit: {recipe.stem}" for recipe in plan.kit]
    blend_name = f"kit: {' + '.join(recipe.stem for recipe in plan.kit)} (blend)"

    def blend(names: list[str], fitted: bool = False) -> dict:
        return repeat_blend([done[name] for name in names], workspace, dataset, index, protocol, fitted)

    blend_candidates = {}
    if all(name in done for name in kit_names):
        rows[blend_name] = blend(kit_names)
        rows[fitted_name(blend_name)] = blend(kit_names, fitted=True)
        # A candidate for the default recipe in its place in the blend; another view of the zoo beside it.
        for name in candidates:
            if name in done and name.startswith("candidate: "):
                label = f"candidate blend: {name.split(', ', 1)[1]} in place of {kit_names[0].split(': ')[1]}"
                blend_candidates[label] = blend([name, *kit_names[1:]])
            elif name in done and name.startswith("zoo: "):
                blend_candidates[f"candidate blend: the blend + {name.split(': ')[1]}"] = blend([*kit_names, name])
    for name in experiments:
        by_seed = done.get(name) or partial.get(name)
        if by_seed:
            label = name if name in done else f"{name} (seed {', '.join(map(str, by_seed))} only)"
            rows[label] = repeat_scores(true_ids, {seed: oof(run, seed) for seed, run in by_seed.items()})
            rows[label]["train_seconds"] = train_seconds(list(by_seed.values()))
    rows.update(blend_candidates)
    default = kit_names[0]
    for label, n_crops in (prediction_ablations(plan, experiments[default][protocol.seeds[0]])
                           if default in done else {}).items():
        rows[f"ablation: {plan.kit[0].stem} {label}"] = repeat_scores(true_ids, {
            seed: fold_probs(done[default][seed], workspace, dataset, index, experiments[default][seed], protocol,
                             n_crops=n_crops) for seed in protocol.seeds})
    target, peer = TARGETS["fsd-subset"], f"peer: Zafar kernel ({plan.peer.stem})"
    verdicts = []
    for name in (blend_name, fitted_name(blend_name), default):
        if name in rows:
            value = rows[name]["mean"]["map@3"]
            verdict = f"{name.split(': ')[1]} {value:.4f} {met(value, target)}"
            if peer in rows:
                margin = value - rows[peer]["mean"]["map@3"]
                verdict += (f", {100 * margin:+.1f} points over Zafar's recipe (>= {100 * FSD_MARGIN_OVER_PEER:+.0f}: "
                            f"{met(margin, FSD_MARGIN_OVER_PEER)})")
            verdicts.append(verdict)
    seeds = " and ".join(str(seed) for seed in protocol.seeds)
    text = (f"\n{protocol.title}: out-of-fold MAP@3 over the 200 clips per repeat (fold seeds {seeds}), their mean, "
            f"spread (max - min) and the standard deviation of the {len(protocol.folds) * len(protocol.seeds)} fold "
            f"MAP@3s; accuracy: mean over repeats ({protocol.epochs} epochs, last epoch kept)\n"
            f"{repeat_table(rows, protocol.seeds)}\n"
            f"target mean MAP@3 >= {target:.2f} and >= {100 * FSD_MARGIN_OVER_PEER:.0f} points over Zafar's recipe: "
            f"{'; '.join(verdicts) or 'nothing finished'}")
    return rows, text
