"""posos-intent: French drug-question intent classification (Posos challenge).

Modules, one job each:
    paths      where the project's files live
    archive    decrypt the GPG archive of the dataset
    data       load, validate, split the dataset (or the demo data)
    intents    human-readable intent names
    features   text normalisation, spaCy tokens and word vectors
    classifier linear classifier with calibrated probabilities
    model      build, fit, save and load the full pipeline
    card       the model card (hashes, versions, metrics)
    metrics    scores, calibration, confusions, bootstrap intervals
    training   fit on the split, save the pickle and its card (notebook 02)
    evaluation validation predictions, figures and metrics.json (notebook 03)
    variability evaluation uncertainty (bootstrap) and training variability (refits over split seeds)
    tuning     Optuna search, workers and storages, fast refits with cached features
    charts     altair charts rendered to inline SVG
    pipeline   run the notebooks with papermill and render HTML reports
"""

__version__ = "0.1.0"
