"""Scenarios: a headend, clients with a behaviour profile, a timeline of impairments and
admin commands, and expectations that give a verdict (issue 5)."""
