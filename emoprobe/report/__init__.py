"""Reporting: tables, statistics, figures and the generated findings, all read from results/."""
