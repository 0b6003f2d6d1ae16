"""The bench's tables (aligned text, one row per recipe) and its verdicts against the targets."""

from __future__ import annotations

from benchmarks.quality.settings import Protocol


def fold_table(rows: dict[str, dict], protocol: Protocol) -> str:
    columns = [protocol.fold_name(f) for f in protocol.folds] + ["mean"]
    width = max([56, *map(len, rows)])
    lines = [f"{'recipe':<{width}}" + "".join(f"{c:>9}" for c in columns) + f"{'MAP@3':>9}{'train s':>9}"]
    for name, scores in rows.items():
        seconds = scores.get("train_seconds")
        lines.append(f"{name:<{width}}" + "".join(f"{scores[c]['accuracy']:>9.4f}" for c in columns)
                     + f"{scores['mean']['map@3']:>9.4f}"
                     + (f"{seconds:>9.0f}" if seconds is not None else f"{'-':>9}"))
    return "\n".join(lines)


def repeat_table(rows: dict[str, dict], seeds: tuple[int, ...]) -> str:
    columns = [f"seed {seed}" for seed in seeds]
    width = max([56, *map(len, rows)])
    lines = [f"{'recipe':<{width}}" + "".join(f"{c:>9}" for c in columns)
             + f"{'mean':>9}{'spread':>9}{'fold sd':>9}{'accuracy':>9}{'train s':>9}"]
    for name, scores in rows.items():
        seconds = scores.get("train_seconds")
        lines.append(f"{name:<{width}}" + "".join(f"{scores[c]['map@3']:>9.4f}" if c in scores else f"{'-':>9}"
                                                   for c in columns)
                     + f"{scores['mean']['map@3']:>9.4f}{scores['spread']:>9.4f}{scores['fold std']:>9.4f}"
                     + f"{scores['mean']['accuracy']:>9.4f}"
                     + (f"{seconds:>9.0f}" if seconds is not None else f"{'-':>9}"))
    return "\n".join(lines)


def transfer_gains(rows: dict[str, dict], scratch: str, protocol: Protocol) -> dict[str, dict]:
    """Each row's accuracy gain over the scratch row, per held-out fold and on the mean (points: 0.05 = 5)."""
    columns = [protocol.fold_name(f) for f in protocol.folds] + ["mean"]
    return {name: {c: scores[c]["accuracy"] - rows[scratch][c]["accuracy"] for c in columns}
            for name, scores in rows.items()}


def transfer_table(rows: dict[str, dict], scratch: str, protocol: Protocol) -> str:
    columns = [protocol.fold_name(f) for f in protocol.folds] + ["mean"]
    gains = transfer_gains(rows, scratch, protocol)
    width = max([60, *map(len, rows)])
    lines = [f"{'recipe':<{width}}" + "".join(f"{c:>8}" for c in columns) + "".join(f"{'+' + c:>9}" for c in columns)
             + f"{'epochs':>7}{'train s':>9}"]
    for name, scores in rows.items():
        lines.append(f"{name:<{width}}" + "".join(f"{scores[c]['accuracy']:>8.4f}" for c in columns)
                     + "".join(f"{100 * gains[name][c]:>+9.1f}" for c in columns)
                     + f"{scores.get('epochs', protocol.epochs):>7}{scores.get('train_seconds', 0):>9.0f}")
    return "\n".join(lines)


def training_seed_table(accuracy: dict[int, dict[str, float | None]], tags: list[str],
                        blended: dict[str, float] | None = None) -> str:
    """One row per training seed: scratch's mean accuracy, then each schedule's transfer (by tag) and its gain
    over scratch of the same seed; then, where every seed finished, their mean and their spread (max - min,
    in points), and the seeds' runs blended (`blended`, by column: "scratch" or a tag) where given."""
    headers = ["scratch"] + [part for tag in tags for part in (f"transfer{tag}", "gain")]
    widths = [max(9, len(header) + 2) for header in headers]

    def row(label: str, cells: list[str]) -> str:
        return f"{label:<16}" + "".join(f"{c:>{w}}" for c, w in zip(cells, widths))

    def line(label: str, by: dict[str, float | None]) -> str:
        cells = [f"{by['scratch']:.4f}" if by["scratch"] is not None else "-"]
        for tag in tags:
            value = by.get(tag)
            cells.append(f"{value:.4f}" if value is not None else "-")
            both = value is not None and by["scratch"] is not None
            cells.append(f"{100 * (value - by['scratch']):+.1f}" if both else "-")
        return row(label, cells)

    def spread_line(complete: list[dict[str, float]]) -> str:
        # How far the seed alone moves each column, in points: a gain inside its own spread is noise.
        def spread(values: list[float]) -> str:
            return f"{100 * (max(values) - min(values)):.1f}"

        cells = [spread([by["scratch"] for by in complete])]
        for tag in tags:
            cells += [spread([by[tag] for by in complete]), spread([by[tag] - by["scratch"] for by in complete])]
        return row("spread, points", cells)

    lines = [row("training seed", headers)]
    lines += [line(str(seed), by) for seed, by in accuracy.items()]
    if len(accuracy) > 1:
        columns = ["scratch", *tags]
        complete = [by for by in accuracy.values() if all(by.get(c) is not None for c in columns)]
        if len(complete) == len(accuracy):
            lines.append(line("mean", {c: sum(by[c] for by in complete) / len(complete) for c in columns}))
            lines.append(spread_line(complete))
    if blended:
        lines.append(line("blend", {"scratch": blended.get("scratch"), **{tag: blended.get(tag) for tag in tags}}))
    return "\n".join(lines)


def met(value: float, target: float) -> str:
    # Accuracies are counts over clips: 0.9200 summed and divided in floating point reads 0.91999...
    return "met" if round(value, 9) >= target else "NOT met"
