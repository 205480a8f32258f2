"""Airflow hooks: connections to the services claimed components talk to."""
