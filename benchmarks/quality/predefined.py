"""ESC-10, ESC-50 and UrbanSound8K on their predefined folds: the kit's views, their blend, the peer,
the ablations and the candidates."""

from __future__ import annotations

from benchmarks.quality.bench import Bench, recipe_experiment
from benchmarks.quality.results import candidates_ahead, previous_rows, rows_ahead
from benchmarks.quality.scores import (
    blend_scores,
    candidates_blend_name,
    fitted_name,
    prediction_ablations,
    rescored,
    run_scores,
)
from benchmarks.quality.settings import FSD_SUBSET, SUPERSETS, TARGETS, Protocol
from benchmarks.quality.superset import Superset
from benchmarks.quality.tables import fold_table, met


def predefined_protocol(bench: Bench, protocol: Protocol, dataset, index, root) -> tuple[dict, str]:
    """ESC-10, ESC-50, UrbanSound8K: the kit's views, their blend, the peer and the ablation; ESC-10 also
    from the ESC-50 protocol's runs (read from `root`'s copy, where they finished)."""
    plan = bench.plan
    workspace = bench.workspace
    kit = [recipe_experiment(recipe, protocol) for recipe in plan.kit]
    peer = recipe_experiment(plan.peer, protocol)
    # The default recipe and the peer first: what a partial run most wants.
    runs = {e.name: bench.train(dataset, index, e) for e in (kit[0], peer, *kit[1:])}
    rows = {}
    blend_name = f"kit: {' + '.join(e.name for e in kit)} (blend)"
    if all(runs[e.name] for e in kit):
        rows[blend_name] = blend_scores([runs[e.name] for e in kit], index, protocol)
        rows[fitted_name(blend_name)] = blend_scores([runs[e.name] for e in kit], index, protocol, fitted=True)
    rows.update({f"kit: {e.name}": run_scores(runs[e.name], index, protocol) for e in kit if runs[e.name]})
    if runs[peer.name]:
        rows[f"peer: Zafar kernel ({peer.name})"] = run_scores(runs[peer.name], index, protocol)
    for label, n_crops in (prediction_ablations(plan, kit[0]) if runs[kit[0].name] else {}).items():
        rows[f"ablation: {kit[0].name} {label}"] = rescored(runs[kit[0].name], workspace, dataset, index, kit[0],
                                                            protocol, n_crops)
    variants = {"esc10": plan.training_ablations, "esc50": plan.training_ablations,
                "urbansound8k": plan.urban_ablations}
    for label, changes in ({} if bench.quick else variants.get(protocol.dataset, {})).items():
        run_dir = bench.train(dataset, index, recipe_experiment(plan.kit[0], protocol, **changes))
        if run_dir:
            rows[f"ablation: {kit[0].name} {label}"] = run_scores(run_dir, index, protocol)
    longer = {} if bench.quick or protocol.dataset not in ("esc10", "esc50") else plan.longer_schedules
    also_judged = []
    for label, changes in longer.items():  # the default first, then the blend's other views
        longer_runs = [bench.train(dataset, index, recipe_experiment(recipe, protocol, **changes))
                       for recipe in plan.kit]
        if longer_runs[0]:
            rows[f"candidate: {kit[0].name}, {label}"] = run_scores(longer_runs[0], index, protocol)
        if all(longer_runs):
            longer_blend = f"candidate: every view, {label} (blend)"
            rows[longer_blend] = blend_scores(longer_runs, index, protocol)
            rows[fitted_name(longer_blend)] = blend_scores(longer_runs, index, protocol, fitted=True)
            also_judged += [longer_blend, fitted_name(longer_blend)]
    candidate_runs = {}
    for label, (features, model, train) in ({} if bench.quick or protocol.dataset != "esc50"
                                            else plan.esc50_candidates).items():
        experiment = recipe_experiment(plan.kit[0], protocol, features=features, model=model, **train)
        run_dir = bench.train(dataset, index, experiment)
        if run_dir:
            candidate_runs[label] = run_dir
            rows[f"candidate: {kit[0].name}, {label}"] = run_scores(run_dir, index, protocol)
            also_judged.append(f"candidate: {kit[0].name}, {label}")
    candidates_note = ""
    if len(candidate_runs) > 1:  # changes that each help may help apart: their runs err apart
        name = f"candidate: {candidates_blend_name(len(candidate_runs))}"
        rows[name] = blend_scores(list(candidate_runs.values()), index, protocol)
        rows[fitted_name(name)] = blend_scores(list(candidate_runs.values()), index, protocol, fitted=True)
        also_judged += [name, fitted_name(name)]
        candidates_note = f"\n'{name}': {'; '.join(candidate_runs)}"
    if protocol.dataset == "esc10" and not bench.quick:  # the FSD subset's candidates, where the default was shaped
        fsd_rows = previous_rows(workspace, FSD_SUBSET.key)
        ahead = candidates_ahead(fsd_rows, f"kit: {kit[0].name}", plan.fsd_candidates)
        for label, (features, model, train) in plan.fsd_candidates.items():
            if label not in ahead or f"candidate: {kit[0].name}, {label}" in rows:  # a longer schedule's row
                continue
            experiment = recipe_experiment(plan.kit[0], protocol, features=features, model=model, **train)
            run_dir = bench.train(dataset, index, experiment)
            if run_dir:
                rows[f"candidate: {kit[0].name}, {label}"] = run_scores(run_dir, index, protocol)
        behind = [label for label in plan.fsd_candidates if label not in ahead]
        for recipe in plan.fsd_extra_views:  # a zoo view that added to the blend there: alone and in the blend here
            label = f"the blend + {recipe.stem}"
            if not rows_ahead(fsd_rows, blend_name, [f"candidate blend: {label}"]):
                behind.append(label)
                continue
            view = recipe_experiment(recipe, protocol)
            run_dir = bench.train(dataset, index, view)
            if run_dir:
                rows[f"zoo: {view.name}"] = run_scores(run_dir, index, protocol)
                if all(runs[e.name] for e in kit):
                    members = [*(runs[e.name] for e in kit), run_dir]
                    rows[f"candidate blend: {label}"] = blend_scores(members, index, protocol)
        if behind:
            candidates_note += (f"\nnot trained here, not ahead of {kit[0].name} on the FSD subset's finished repeats "
                                f"(or not scored there yet): {'; '.join(behind)}")
    superset, superset_note = {}, ""
    if protocol.dataset in SUPERSETS:
        views = Superset(bench, protocol, dataset, index, root)
        superset = {**views.rows(), **views.beside("kit", {e.name: runs[e.name] for e in kit if runs[e.name]})}
        superset_note = views.note()
    rows.update(superset)
    target = TARGETS[protocol.dataset]
    # The kit's rows by what follows "kit: " or "candidate: "; the superset's rows by their whole names.
    judged = {name.split(": ")[1]: name for name in (blend_name, fitted_name(blend_name), f"kit: {kit[0].name}",
                                                       *also_judged)} | {name: name for name in superset}
    verdicts = "; ".join(f"{label} {rows[name]['mean']['accuracy']:.4f} {met(rows[name]['mean']['accuracy'], target)}"
                         for label, name in judged.items() if name in rows)
    text = (f"\n{protocol.title}: accuracy per held-out fold, mean over folds ({protocol.epochs} epochs, "
            f"last epoch kept)\n{fold_table(rows, protocol)}\n"
            f"target mean accuracy >= {target:.2f}: {verdicts or 'nothing finished'}{candidates_note}{superset_note}")
    return rows, text
