"""Triggers of claimed operators: the long waits of components run here, in Airflow's triggerer."""

from __future__ import annotations

from claimed_airflow.triggers.poll import PollTrigger

__all__ = ["PollTrigger"]
