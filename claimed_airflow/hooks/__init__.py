"""Airflow hooks (connections) of claimed-airflow."""
