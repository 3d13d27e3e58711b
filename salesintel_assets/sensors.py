"""Sensors: alert materialisation, delivery and run-failure notices."""

sensors: list = []
