"""Predefined folds fine-tuned from ESC-50 bases against the same recipes from scratch: UrbanSound8K
fold 1 <-> 2 (bases without its recordings) and ESC-10 (bases on ESC-50's other classes)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from benchmarks.quality.bases import Esc50Bases, base_schedules
from benchmarks.quality.bases import fine_tune as fine_tune_from
from benchmarks.quality.bench import Bench, recipe_experiment
from benchmarks.quality.data import shared_copy
from benchmarks.quality.scores import FITTED, blend_scores, run_scores
from benchmarks.quality.settings import BASES_WITHOUT, SUPERSETS, TARGETS, TRANSFER_GAINS, Protocol
from benchmarks.quality.superset import Superset
from benchmarks.quality.tables import met, training_seed_table, transfer_gains, transfer_table


def transfer_protocol(bench: Bench, protocol: Protocol, dataset, index, shared: Path) -> tuple[dict, str]:
    """The ESC-50 bases (leakage guard on), then the protocol's folds from them and from scratch: the
    default recipe (also with the fine-tuning variants, from every base schedule),
    and the default blend with every view from its own base. Then the same from bases trained on longer
    schedules (not with --quick).
    A target of ESC-50's own classes (ESC-10) gets bases on ESC-50's other classes: none of its clips."""
    from competition.datasets.esc50 import LABELS as ESC50_LABELS

    plan = bench.plan
    names = [path.stem for path in plan.kit]
    default = names[0]
    schedules = base_schedules(bench)
    without = BASES_WITHOUT[protocol.key]
    # The guard alone would leave out a subset's own clips (they are its recordings); the base also
    # keeps only the other classes, so its head and its check clips hold no class it never trains on.
    classes = (tuple(label for label in ESC50_LABELS if label not in dataset.labels)
               if set(dataset.labels) <= set(ESC50_LABELS) else None)

    def fine_tune(experiment, base) -> Path | None:
        return fine_tune_from(bench, dataset, index, experiment, base)

    views = {path.stem: recipe_experiment(path, protocol) for path in plan.kit}
    scratch_views: dict[str, Path | None] = {}
    transferred: dict[str, dict[str, Path | None]] = {}  # tag -> view -> its run fine-tuned from that base
    rows, base_notes = {}, []
    default_bases = {}  # tag -> the default view's base of that schedule
    scratch = f"scratch: {default}"
    for tag, epochs in schedules.items():  # the default recipe's runs first: what a partial run most wants
        bases, notes = Esc50Bases(bench, shared, epochs, without=without,
                                  classes=classes).trained(plan.kit, dataset.name, index.train)
        base_notes += notes
        transferred[tag] = {}
        if default in bases:
            default_bases[tag] = bases[default]
        for name, view in views.items():
            if not tag:
                scratch_views[name] = bench.train(dataset, index, view)
                if name == default and scratch_views[name]:
                    rows[scratch] = run_scores(scratch_views[name], index, protocol)
            if name not in bases:
                continue
            # The default recipe also with what a practitioner would try, from each schedule's base: a
            # longer base may want another fine-tune.
            variants = {"same recipe": {}, **(plan.transfer_variants if name == default else {})}
            for label, changes in variants.items():
                experiment = view.with_overrides(train=changes)
                run_dir = fine_tune(experiment, bases[name])
                if not changes:
                    transferred[tag][name] = run_dir
                if run_dir and name == default:
                    rows[f"transfer{tag}: {label}"] = run_scores(run_dir, index, protocol)
                    rows[f"transfer{tag}: {label}"]["epochs"] = experiment.train.epochs
            if name == default:  # what `make transfer` itself trains from this base
                experiment = kit_transfer(bases[name], plan.kit_transfer, dataset.name, view.name)
                run_dir = fine_tune(experiment, bases[name])
                if run_dir:
                    label = f"transfer{tag}: make transfer's settings ({plan.kit_transfer.name})"
                    rows[label] = run_scores(run_dir, index, protocol)
                    rows[label]["epochs"] = experiment.train.epochs
    superset_note = ""
    if protocol.dataset in SUPERSETS:  # each plain fine-tune beside the superset's run of the same view
        superset = Superset(bench, protocol, dataset, index, shared_copy(shared, protocol, bench.workspace))
        for tag, by_view in transferred.items():
            if by_view.get(default):
                rows.update(superset.beside(f"transfer{tag}: same recipe", {default: by_view[default]}))
        superset_note = superset.note()
    seed_rows, seed_text = training_seed_repeats(
        bench, protocol, dataset, index, views[default], default_bases, fine_tune, scratch_views.get(default),
        {tag: by_view.get(default) for tag, by_view in transferred.items()})
    # The blend transferred against the blend from scratch; the scratch and the transferred views,
    # started apart, may err apart: all of them blended too.
    blend_rows = {}
    blend = f"{' + '.join(names)} (blend)"
    if all(scratch_views.get(name) for name in names):
        blend_rows[f"scratch: {blend}"] = blend_scores([scratch_views[name] for name in names], index, protocol)
        for tag, by_view in transferred.items():
            if not all(by_view.get(name) for name in names):
                continue
            blend_rows[f"transfer{tag}: {blend}"] = blend_scores([by_view[name] for name in names], index, protocol)
            six = [*(scratch_views[name] for name in names), *(by_view[name] for name in names)]
            blend_rows[f"scratch + transfer{tag}: {len(six)} views (blend)"] = blend_scores(six, index, protocol)
            blend_rows[f"scratch + transfer{tag}: {len(six)} views {FITTED}"] = blend_scores(six, index, protocol,
                                                                                              fitted=True)
        # Every base schedule's views beside the scratch ones: all the runs a practitioner has, blended.
        complete = [by_view for by_view in transferred.values() if all(by_view.get(name) for name in names)]
        if len(complete) > 1:
            every = [*(scratch_views[name] for name in names), *(by_view[name] for by_view in complete
                                                                 for name in names)]
            for label, fitted in (("(blend)", False), (FITTED, True)):
                blend_rows[f"scratch + every transfer: {len(every)} views {label}"] = blend_scores(
                    every, index, protocol, fitted=fitted)
    view_notes = []
    scratch_alone = {name: run_scores(run, index, protocol)["mean"]["accuracy"]
                     for name, run in scratch_views.items() if run}
    for tag, by_view in transferred.items():  # each view alone, transferred against from scratch
        for name, run_dir in by_view.items():
            if run_dir and name in scratch_alone:
                alone = run_scores(run_dir, index, protocol)["mean"]["accuracy"]
                view_notes.append(f"{name} alone: scratch {scratch_alone[name]:.4f}, transfer{tag} {alone:.4f} "
                                  f"({100 * (alone - scratch_alone[name]):+.1f})")
    base_note = "\n".join(base_notes)
    text = (f"\n{protocol.title}: accuracy per held-out fold, mean over folds, and the gain over scratch in "
            f"points ({protocol.epochs} epochs unless the row says, last epoch kept)\n{base_note}\n")
    feature_rows, feature_text = other_features(bench, protocol, dataset, index, shared, fine_tune,
                                                without=without, classes=classes)
    if scratch not in rows:
        return {**rows, **feature_rows}, text + "scratch run not finished" + feature_text
    text += transfer_table(rows, scratch, protocol) + "\n"
    text += target_line(protocol, rows, scratch)
    if blend_rows:
        scratch_blend = next(iter(blend_rows))
        text += (f"\nthe default blend, every view from its own ESC-50 base, against the blend from scratch "
                 f"(gains over the scratch blend)\n{transfer_table(blend_rows, scratch_blend, protocol)}")
        rows.update(blend_rows)
        for transfer_blend in list(blend_rows)[1:]:
            gain = transfer_gains(blend_rows, scratch_blend, protocol)[transfer_blend]["mean"]
            text += (f"\ntarget: {transfer_blend} "
                     f"{verdict(protocol, blend_rows[transfer_blend]['mean']['accuracy'], gain)}")
    if view_notes:
        text += "\n" + "; ".join(view_notes)
    text += superset_note
    rows.update(seed_rows)
    rows.update(feature_rows)
    return rows, text + seed_text + feature_text


def other_features(bench: Bench, protocol: Protocol, dataset, index, shared: Path, fine_tune, *, without: Protocol,
                   classes: tuple[str, ...] | None) -> tuple[dict, str]:
    """The default recipe on each of the plan's other features (not with --quick): its ESC-50 base, scratch
    run, plain fine-tune and fine-tuning variants on those features, in a table of their own (the gains
    over that scratch run), then its training-seed repeats."""
    plan = bench.plan
    rows, text = {}, ""
    for tag, (features, epochs) in ({} if bench.quick else plan.transfer_features).items():
        view = recipe_experiment(plan.kit[0], protocol, features=features)
        bases, notes = Esc50Bases(bench, shared, epochs, without=without, classes=classes,
                                  features=features).trained(plan.kit[:1], dataset.name, index.train)
        base = bases.get(view.name)
        scratch, suffix = f"scratch ({tag}): {view.name}", f" ({tag})"
        own_scratch, own_transfer = bench.train(dataset, index, view), None
        section = {}
        if own_scratch:
            section[scratch] = run_scores(own_scratch, index, protocol)
        for label, changes in ({"same recipe": {}, **plan.transfer_variants} if base else {}).items():
            experiment = view.with_overrides(train=changes)
            run_dir = fine_tune(experiment, base)
            if not changes:
                own_transfer = run_dir
            if run_dir:
                section[f"transfer{suffix}: {label}"] = {**run_scores(run_dir, index, protocol),
                                                         "epochs": experiment.train.epochs}
        text += (f"\n\nthe default recipe on {tag} ({', '.join(f'{k} {v}' for k, v in features.items())}): base, "
                 f"fine-tunes and scratch alike, gains over that scratch run\n" + "\n".join(notes) + "\n")
        if scratch not in section:
            text += "scratch run not finished"
            rows.update(section)
            continue
        text += transfer_table(section, scratch, protocol) + "\n" + target_line(protocol, section, scratch)
        seed_rows, seed_text = training_seed_repeats(bench, protocol, dataset, index, view,
                                                     {suffix: base} if base else {}, fine_tune, own_scratch,
                                                     {suffix: own_transfer}, scratch_tag=suffix)
        rows.update({**section, **seed_rows})
        text += seed_text
    return rows, text


def training_seed_repeats(bench: Bench, protocol: Protocol, dataset, index, view, bases: dict, fine_tune,
                          own_scratch: Path | None, own_transfers: dict[str, Path | None],
                          scratch_tag: str = "") -> tuple[dict, str]:
    """The default view's scratch run and its plain fine-tune from each schedule's base (`bases`, by tag)
    again with the plan's other training seeds, on the same folds from the same bases: each seed's gain
    over scratch of the same seed, and the target's verdict on the mean over seeds. `own_scratch` and
    `own_transfers` (by tag): the runs of the recipe's own seed; `scratch_tag` tells its scratch rows apart
    (the recipe on other features)."""
    own = view.train.seed
    seeds = [own, *dict.fromkeys(seed for seed in bench.plan.training_seeds if seed != own)]
    if len(seeds) == 1:
        return {}, ""
    runs = {own: {"scratch": own_scratch, **{tag: own_transfers.get(tag) for tag in bases}}}
    rows = {}
    for seed in seeds[1:]:
        experiment = view.with_overrides(train={"seed": seed})
        runs[seed] = {"scratch": bench.train(dataset, index, experiment)}
        if runs[seed]["scratch"]:
            rows[f"scratch{scratch_tag}: {view.name}, training seed {seed}"] = run_scores(runs[seed]["scratch"],
                                                                                         index, protocol)
        for tag, base in bases.items():
            runs[seed][tag] = fine_tune(experiment, base)
            if runs[seed][tag]:
                rows[f"transfer{tag}: same recipe, training seed {seed}"] = run_scores(runs[seed][tag], index,
                                                                                      protocol)
    accuracy = {seed: {column: run_scores(run, index, protocol)["mean"]["accuracy"] if run else None
                       for column, run in by_column.items()} for seed, by_column in runs.items()}
    # The seeds' runs blended (geometric mean): what a practitioner does with them, scratch's as transfer's.
    seeds_named = " + ".join(map(str, seeds))
    blended = {}
    for column in runs[own]:
        members = [runs[seed][column] for seed in seeds]
        if all(members):
            scores = blend_scores(members, index, protocol)
            label = f"scratch{scratch_tag}: {view.name}" if column == "scratch" else f"transfer{column}: same recipe"
            rows[f"{label}, training seeds {seeds_named} (blend)"] = scores
            blended[column] = scores["mean"]["accuracy"]
    text = (f"\nthe default recipe{scratch_tag} ({view.name}) with other training seeds, same folds, same bases: "
            f"mean accuracy over folds, and each transfer's gain over scratch of the same seed (the blend: over the "
            f"seeds' blend from scratch) in points\n" + training_seed_table(accuracy, list(bases), blended))

    def on_average(pairs: list[tuple[float, float]]) -> str:
        return verdict(protocol, float(np.mean([transfer for transfer, _ in pairs])),
                       float(np.mean([transfer - scratch for transfer, scratch in pairs])))

    verdicts = []
    for tag in bases:
        pairs = [(by[tag], by["scratch"]) for by in accuracy.values()
                 if by[tag] is not None and by["scratch"] is not None]
        if len(pairs) == len(seeds):
            verdicts.append(f"transfer{tag} {on_average(pairs)}")
        if tag in blended and "scratch" in blended:
            verdicts.append(f"transfer{tag}, seeds blended {on_average([(blended[tag], blended['scratch'])])}")
    text += (f"\ntarget on training seeds {', '.join(map(str, seeds))} (their mean, their blend): "
             + ("; ".join(verdicts) or "not every seed finished"))
    return rows, text


def verdict(protocol: Protocol, accuracy: float, gain: float) -> str:
    """A transfer's mean accuracy and gain over scratch against the protocol's targets."""
    gain_target = TRANSFER_GAINS.get(protocol.dataset)
    return (f"{accuracy:.4f} {met(accuracy, TARGETS[protocol.dataset])}, gain {100 * gain:+.1f}"
            + (f" {met(gain, gain_target)}" if gain_target is not None else ""))


def target_line(protocol: Protocol, rows: dict[str, dict], scratch: str) -> str:
    """The targets, and every row's verdict on them but the scratch one's (its gain over `scratch`)."""
    gain_target = TRANSFER_GAINS.get(protocol.dataset)
    gains = transfer_gains(rows, scratch, protocol)
    verdicts = [f"{name.removeprefix('transfer: ')} "
                f"{verdict(protocol, rows[name]['mean']['accuracy'], gains[name]['mean'])}"
                for name in rows if name != scratch]
    return (f"target transfer mean accuracy >= {TARGETS[protocol.dataset]:.2f}"
            + (f" and gain >= {100 * gain_target:+.0f} points" if gain_target is not None else "")
            + f": {'; '.join(verdicts) or 'nothing finished'}")


def kit_transfer(base, settings: Path, dataset: str, view: str):
    """`make transfer`'s experiment from `base` (its features and model, the settings file's training),
    named after the view it fine-tunes, its last epoch kept as in every row of the bench."""
    from competition.modeling.transfer import transfer_experiment

    experiment = transfer_experiment(base.dir, settings, dataset)
    return replace(experiment, name=view).with_overrides(train={"keep_epoch": "last"})
