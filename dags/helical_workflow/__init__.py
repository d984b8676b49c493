"""Logic of the helical_model_workflow DAG, importable and testable without Airflow (except operator.py)."""
