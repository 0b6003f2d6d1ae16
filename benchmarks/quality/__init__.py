"""Quality on real recordings (`make bench-quality`): the kit's default recipe against a peer baseline.

Protocols, on the copies in ../shared/data beside the kit (skipped, with a message, when absent), by
the names `--only` (`make bench-quality ONLY=...`) takes, in the order they run:

    fsd-subset     the 200 real FSDKaggle2018 clips (10 instrument labels x 20, all verified): repeated
                   stratified 5-fold CV (two repeats, fold seeds 42 and 7), out-of-fold MAP@3 and
                   accuracy over the 200 clips per repeat, their mean and spread; every recipe on the
                   same folds. The recipe candidates for the competition's sound are scored here too,
                   alone and in the default recipe's place in the blend, and the zoo's other views
                   alone and as one more member of the blend.
    transfer       UrbanSound8K fold 1 -> 2 and 2 -> 1 fine-tuned from a base trained on ESC-50 with
                   the leakage guard on (the base never sees a clip of a recording UrbanSound8K holds:
                   the kit's exclude-sources mechanism), beside the same recipe from scratch (same
                   epochs, same folds): the transfer gain in points per fold; then what a practitioner
                   would try (the backbone frozen for the first epochs, a lower learning rate, longer
                   fine-tuning, the base's own clips rehearsed beside the target's) and what
                   `make transfer` itself trains (its settings file, on the base's features and
                   model); and the default blend with every view fine-tuned
                   from its own ESC-50 base against the blend from scratch; then all of it again
                   from bases trained on a longer schedule (not with --quick); last, the default
                   recipe's scratch run and plain fine-tune again with other training seeds
                   (QualityPlan.training_seeds), each seed's gain against its own scratch, how far
                   the seed alone moves each column (max - min, points), the seeds' runs blended,
                   and the target's verdict on the mean over seeds and on the blends; then the
                   default recipe on other features (QualityPlan.transfer_features: ESC-50's copy's
                   16 kHz, 24 ms frames, 120-epoch bases; not with --quick), base, scratch run,
                   fine-tunes and training seeds alike, in a table of its own (gains over that scratch)
    fsd-transfer   the FSD subset's default views, each fine-tuned from its ESC-50 base (the transfer
                   protocol's; the guard checks them against the subset's Freesound ids, from the
                   competition's post-competition CSV) on the fsd-subset protocol's repeated folds,
                   beside the same views from scratch (its runs): the gain in MAP@3 points per repeat,
                   and the blend of the transferred views and of all six; the same from the longer
                   bases (not with --quick), and the scratch views with every schedule's fine-tunes
    esc50          ESC-50 (at 16 kHz, Vorbis), 5-fold CV on the predefined folds (2,000 clips, 50 classes);
                   every view of the default blend on a longer schedule too, alone and blended,
                   and the default recipe at width 32, at 200 epochs and on 16 kHz features of 32 ms frames
                   (there also at width 32, on 120 epochs, on 24 ms frames, and on 32 and 24 ms
                   frames and 120 epochs in float32 beside bfloat16; none with --quick), and those of them that
                   finished blended
    esc10          the same, on the rows marked esc10 of the shared ESC-50 copy (400 clips, 10 classes),
                   read in place as the kit's `esc10` dataset, the longer schedule too; and
                   scored by the esc50 protocol's runs where they finished (each view trained on the
                   other folds' clips of all 50 classes, its held-out predictions of ESC-10's clips
                   read among ESC-10's 10 labels; nothing trained for it here), alone, blended, and
                   blended with ESC-10's own runs of the same views; ESC-50's candidates and their blend read so too;
                   with how many ESC-10 clips share
                   a recording with an ESC-50 clip of another fold
    esc10-transfer ESC-10's default views, each fine-tuned from a base on ESC-50's other 40 classes
                   (so no ESC-10 clip; the guard leaves out every clip cut from a recording ESC-10
                   holds), against the same views from scratch (the esc10 protocol's runs): the gain
                   per fold, the default view also with transfer's fine-tuning variants and
                   `make transfer`'s settings, and the blends of both; from the longer bases too
                   (not with --quick), and the scratch views with every schedule's fine-tunes; each
                   plain fine-tune of the default view blended with its ESC-50 protocol run (as on
                   esc10); the training-seed repeats and the recipe on other features as on transfer
    urbansound8k   train on fold 1, test on fold 2, and the reverse (the folds we have; 10 classes)

Recipes, each trained by the kit's own `train_experiment` on the same folds:

    kit    the Makefile's default EXPERIMENTS (QualityPlan.kit in settings.py; the first is the
           default recipe),
           alone and blended by a geometric mean: with equal weights, and with the weights
           `make ensemble` fits by default, fitted out of fold (each held-out fold's weights fitted
           on the other folds' out-of-fold predictions only, never on the clips they score)
    peer   experiments/zafar-mfcc-cnn.toml, the recipe of Zafar's Kaggle kernel

Every model is the one of its last epoch (`keep_epoch = "last"`), so the test fold never picks an
epoch or stops training: the numbers are test numbers, not validation numbers. Each protocol sets
its epochs and prints them.

Each recipe is loaded for its dataset, with the experiment file's `[datasets.<name>]` values (the
log-mel views shift bins and levels on UrbanSound8K only). The ablation takes the default recipe
apart: its fold models re-scored predicting otherwise (one centre crop, 5 TTA crops, or each clip whole in
one pass, whichever is not its own; every protocol; no training),
each member alone against the blend, and on the FSD subset, ESC-50 and ESC-10 retrained without
SpecAugment masking and without mixup, on UrbanSound8K without its bin shifts and level changes. --quick skips
those retrainings. An FSD-subset candidate ahead of the default there is also trained on ESC-10 (but
with --quick), where the default was shaped: a candidate becomes the default only if it does not
lose there. Runs land in
runs/bench-<dataset>-<recipe>-<hash>/ of the workspace, reports included, so a rerun reuses
whatever finished; --finished-only trains nothing and prints the tables of what finished (a recipe
not finished is named); --recipes NAMES trains only those experiments' runs (two processes can
share a protocol). The tables go to runs/bench-quality.txt/.json after each
protocol, a protocol run again replacing its own table and keeping the others'.

The package, in the order the data flows: settings (protocols, targets, the plan of recipes) ->
data (the shared copies as datasets) -> bench (training) -> scores -> tables -> one module per
protocol kind (predefined with superset (ESC-10 from ESC-50's runs), repeated, bases + transfer
(UrbanSound8K, ESC-10), fsd_transfer) ->
results -> runner (the entry).
"""
