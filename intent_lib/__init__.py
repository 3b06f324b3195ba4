"""posos-intent: French drug-question intent classification (Posos challenge).

Modules, one job each (ARCHITECTURE.md draws how they fit; tests/test_module_list.py keeps this list whole):
    paths       the artefact layout: every directory and file name, the notebooks in order
    files       content hashes and atomic JSON writes
    archive     decrypt the GPG archive of the dataset
    data        which dataset a run uses (archive, CSV files or demo), loaded strictly
    split       the stratified train/validation split and its description (notebook 01)
    intents     human-readable intent names and labels ("28 · name")
    features    text normalisation, spaCy tokens and word vectors, the sentence-embedding block
    encoder     the sentence encoder and its embedding cache (memory and disk, by text hash)
    classifier  linear classifier with calibrated probabilities
    model       build and fit the full pipeline
    predictor   serving-time probabilities, block by block, without scikit-learn's per-call checks; rank intents
    card        the model card (hashes, versions, metrics)
    artefacts   save the pickle; load it only after checking it against its card
    predictions the saved validation and held-out predictions: write, read back in a step's row order
    metrics     scores, calibration, confusions, bootstrap intervals
    uncertainty the unsure threshold and conformal prediction sets
    scope       the out-of-scope rule: mean cosine to the nearest labelled questions, its threshold
    reasons     why an answer is unsure (no_content > out_of_scope > low_confidence) and the content check
    training    fit on the split, refit on every label, save the pickle, its card and predictions (notebook 02)
    evaluation  scores of the saved validation predictions and the metrics file (notebook 03)
    refit       fast refits on cached features, shared by variability and tuning
    variability evaluation uncertainty (bootstrap) and training variability (refits over split seeds) (notebook 04)
    best_params the tuned-parameters file: build, write, read, summarise
    tuning      the Optuna search: search space, the trials' cheaper recipe, pruning, the study (notebook 05)
    tuning_storage where a study lives: storage URLs (without passwords) and Optuna storages
    tuning_workers where trials run: this process or worker processes sharing a study; the worker command
    tuning_results the trials table, the best trial refitted with the full recipe against the defaults, the record
    tune_tracking make tune on record: an MLflow parent run, a child run per trial
    data_quality likely label errors and conflicting duplicates, and the data-quality record (notebook 06)
    question_profile how questions look: length, unseen words, language, junk; test against labelled (06)
    relabel     the relabel experiment: does cleaning the training labels help? (06, off by default)
    charts      altair charts rendered to inline SVG
    tables      how report tables look (text columns aligned left)
    pipeline    run the notebooks with papermill, render HTML reports, reuse the steps whose stamp matches
    stamps      a step's stamp: content hashes of what it ran on and wrote
    index_page  the reports' index page: each step ran or reused, when; this run against its baseline
    tracking    one MLflow run per train: parameters, validation figures, tags, artefacts (local SQLite store)
    comparison  paired bootstrap of two runs' validation predictions: deltas, intervals, changed intents
    baseline    which run a train run is compared with, and its comparison file
    model_registry a version per new model, the champion alias, a version fetched and checked for the API
    results     the figures README and docs/ quote: distilled from a run's artefacts into docs/results.json
    results_blocks the generated blocks of README and docs/: rendered from that snapshot; figures typed outside them
    __main__    the command line: python -m intent_lib train|tune|decrypt|fetch|promote
"""

__version__ = "0.1.0"
