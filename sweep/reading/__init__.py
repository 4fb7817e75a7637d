"""Reading a study: results (`show`, `studies`), the report, the Bayes ceiling of the reference data, and the dashboard
with its guard."""
