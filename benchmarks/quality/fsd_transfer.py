"""The FSD subset's default views fine-tuned from the ESC-50 bases on the fsd-subset protocol's
repeated folds, against the same views from scratch (its runs)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.quality.bases import Esc50Bases, base_schedules
from benchmarks.quality.bases import fine_tune as fine_tune_from
from benchmarks.quality.bench import Bench, recipe_experiment
from benchmarks.quality.scores import FITTED, fitted_name, repeat_blend
from benchmarks.quality.settings import BASES_WITHOUT, FSD_MARGIN_OVER_PEER, TARGETS, Protocol
from benchmarks.quality.tables import met, repeat_table


def fsd_transfer_protocol(bench: Bench, protocol: Protocol, dataset, index, shared: Path) -> tuple[dict, str]:
    """The FSD subset: each default view fine-tuned from its ESC-50 base on the fsd-subset protocol's
    repeated folds, beside the same view from scratch (its runs, reused); the blends of both. Then
    the same from bases trained on longer schedules (not with --quick)."""
    plan, workspace = bench.plan, bench.workspace
    names = [recipe.stem for recipe in plan.kit]
    default = names[0]
    schedules = base_schedules(bench)
    base_sets, base_notes = {}, []
    for tag, epochs in schedules.items():  # the bases first: a fine-tune needs its base finished
        bases = Esc50Bases(bench, shared, epochs, without=BASES_WITHOUT[protocol.key])
        base_sets[tag], notes = bases.trained(plan.kit, dataset.name, index.train)
        base_notes += notes

    def fine_tune(experiment, base) -> Path | None:
        return fine_tune_from(bench, dataset, index, experiment, base)

    peer = {seed: bench.train(dataset, index, recipe_experiment(plan.peer, protocol, fold_seed=seed))
            for seed in protocol.seeds}
    scratch: dict[str, dict[int, Path | None]] = {}
    # transferred[tag][view][seed]: each view fine-tuned per repeat from its base of that schedule.
    transferred: dict[str, dict[str, dict[int, Path | None]]] = {tag: {} for tag in schedules}
    variants: dict[str, dict[int, Path | None]] = {}  # what a practitioner would try, on the default view
    for tag in schedules:  # the default schedule's whole repeats, its variants, then the longer schedules
        for seed in protocol.seeds:
            for recipe in plan.kit:
                experiment = recipe_experiment(recipe, protocol, fold_seed=seed)
                if not tag:
                    scratch.setdefault(recipe.stem, {})[seed] = bench.train(dataset, index, experiment)
                if recipe.stem in base_sets[tag]:
                    transferred[tag].setdefault(recipe.stem, {})[seed] = fine_tune(experiment,
                                                                                  base_sets[tag][recipe.stem])
        if not tag and default in base_sets[tag]:
            for label, changes in plan.transfer_variants.items():
                for seed in protocol.seeds:
                    experiment = recipe_experiment(plan.kit[0], protocol, fold_seed=seed).with_overrides(train=changes)
                    variants.setdefault(label, {})[seed] = fine_tune(experiment, base_sets[tag][default])

    def finished(by_seed: dict | None) -> bool:
        return bool(by_seed) and all(by_seed.get(seed) for seed in protocol.seeds)

    def row(members: list[dict[int, Path]], fitted: bool = False) -> dict:
        return repeat_blend(members, workspace, dataset, index, protocol, fitted)

    rows, pairs = {}, {}  # pairs: a transferred row -> the scratch row it is set against
    peer_name = f"peer: Zafar kernel ({plan.peer.stem})"
    if finished(peer):
        rows[peer_name] = row([peer])
    for name in names:
        if finished(scratch[name]):
            rows[f"scratch: {name}"] = row([scratch[name]])
        # The plain fine-tune, the variants (on the default view), then the fine-tunes from longer bases.
        labelled = [(f"transfer: {name}", transferred[""].get(name))]
        if name == default:
            labelled += [(f"transfer: {name}, {label}", by_seed) for label, by_seed in variants.items()]
        labelled += [(f"transfer{tag}: {name}", transferred[tag].get(name)) for tag in schedules if tag]
        for label, by_seed in labelled:
            if finished(by_seed):
                rows[label] = row([by_seed])
                pairs[label] = f"scratch: {name}"
    blend = f"{' + '.join(names)} (blend)"
    if all(finished(scratch[name]) for name in names):
        rows[f"scratch: {blend}"] = row([scratch[name] for name in names])
        for tag in schedules:
            views = transferred[tag]
            if not all(finished(views.get(name)) for name in names):
                continue
            for name, fitted in ((f"transfer{tag}: {blend}", False), (f"transfer{tag}: {fitted_name(blend)}", True)):
                rows[name] = row([views[view] for view in names], fitted)
                pairs[name] = f"scratch: {blend}"
            # Started apart, the scratch and the transferred views may err apart: all six blended.
            six = [*(scratch[name] for name in names), *(views[name] for name in names)]
            for name, fitted in ((f"scratch + transfer{tag}: {len(six)} views (blend)", False),
                                 (f"scratch + transfer{tag}: {len(six)} views {FITTED}", True)):
                rows[name] = row(six, fitted)
                pairs[name] = f"scratch: {blend}"
        # Every base schedule's views beside the scratch ones: all the runs a practitioner has, blended.
        complete = [views for views in transferred.values() if all(finished(views.get(name)) for name in names)]
        if len(complete) > 1:
            every = [*(scratch[name] for name in names), *(views[name] for views in complete for name in names)]
            for name, fitted in ((f"scratch + every transfer: {len(every)} views (blend)", False),
                                 (f"scratch + every transfer: {len(every)} views {FITTED}", True)):
                rows[name] = row(every, fitted)
                pairs[name] = f"scratch: {blend}"
    text = (f"\n{protocol.title}: out-of-fold MAP@3 per repeat (the fsd-subset protocol's folds, fold seeds "
            f"{' and '.join(map(str, protocol.seeds))}; {protocol.epochs} epochs, last epoch kept)\n"
            + "\n".join(base_notes) + "\n" + (repeat_table(rows, protocol.seeds) if rows else "nothing finished"))
    for name, reference in pairs.items():
        gains = [rows[name][f"seed {seed}"]["map@3"] - rows[reference][f"seed {seed}"]["map@3"]
                 for seed in protocol.seeds]
        text += (f"\n{name}: {100 * (rows[name]['mean']['map@3'] - rows[reference]['mean']['map@3']):+.1f} MAP@3 "
                 f"points over {reference} ("
                 + ", ".join(f"seed {seed} {100 * gain:+.1f}" for seed, gain in zip(protocol.seeds, gains)) + ")")
    verdicts = []
    for name in pairs:
        value = rows[name]["mean"]["map@3"]
        verdict = f"{name} {value:.4f} {met(value, TARGETS['fsd-subset'])}"
        if peer_name in rows:
            margin = value - rows[peer_name]["mean"]["map@3"]
            verdict += f", {100 * margin:+.1f} over Zafar's recipe {met(margin, FSD_MARGIN_OVER_PEER)}"
        verdicts.append(verdict)
    if verdicts:
        text += (f"\ntarget mean MAP@3 >= {TARGETS['fsd-subset']:.2f} and >= {100 * FSD_MARGIN_OVER_PEER:.0f} points "
                 f"over Zafar's recipe: {'; '.join(verdicts)}")
    return rows, text
