"""The app's answer for one file, as JSON: what `Tagger.tag` found, in the terms the page draws."""

from __future__ import annotations

import base64

from competition.app.images import spectrogram_png
from competition.submit.predict import Tags


def answer_json(tags: Tags, *, file_name: str, file_seconds: float, model: str, elapsed: float) -> dict:
    """Top tags, every label's probability, the timeline crops' probabilities and the spectrogram."""
    strongest = int(tags.crop_probs[:, tags.labels.index(tags.top[0][0])].argmax()) if tags.top else 0
    return {
        "ok": True,
        "file": file_name,
        "model": model,
        "seconds": round(tags.seconds, 3),
        "file_seconds": round(file_seconds, 3),
        "notes": tags.notes,
        "top": [{"label": label, "probability": probability} for label, probability in tags.top],
        "labels": tags.labels,
        "probabilities": [float(p) for p in tags.probs],
        "timeline": {
            "starts": [round(float(s), 3) for s in tags.crop_starts],
            "crop_seconds": round(tags.crop_seconds, 3),
            "probabilities": [[float(p) for p in row] for row in tags.crop_probs],
            "strongest": strongest,  # the crop where the top tag is most probable
        },
        "spectrogram": "data:image/png;base64," + base64.b64encode(spectrogram_png(tags.logmel)).decode(),
        "elapsed_seconds": round(elapsed, 3),
    }
