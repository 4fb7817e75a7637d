"""What is shipped: the choice of what to export (refit, fold models, greedy ensembles), the decision and its check,
calibration, and the bundle."""
