"""The upgrade gate: what a run checked, what drifted and by how much, and what a recording moved.

After upgrading PyTorch, one run says what still holds, what drifted (in units in the last place
and as a share of the tolerance) and what broke; accepting a new baseline is a recording run that
is reviewed and committed. One concern per module, none importing a module above it in this list:

==================  ============================================================================
``plugin``          the pytest plugin conftest.py loads: registers the parts below, the header
``options``         ``--spec-report``, ``--spec-report-label``; recording runs, xdist workers
``observations``    the ``observe`` fixture: values a test saw without asserting them
``matrix``          the terminal matrix every run ends with
``integrity``       the fixtures folder checked in every run (orphans, stray files, edits)
``collector``       ``--spec-report``: a row per test, written as JSON and Markdown
``environment``     a run's machine, torch build, devices and flags, as the report holds them
``recording``       after a recording run: PROVENANCE.json and CHANGES.md, for the files written
``provenance``      ``fixtures/PROVENANCE.json``: which environment recorded each file (sha256)
``rebaseline``      what moved in ``fixtures/`` against a git revision (CHANGES.md's sections)
``reports``         the report format: read (older versions upgraded), write, validate
``markdown``        a report's Markdown: failures first, then the matrix, the rest folded
``compare``         what changed between two reports
``merge``           one report of several runs
``text``            how figures and table cells are written
``__main__``        ``python -m rnnspec.gate compare | merge | render | validate | rebaseline-summary``
==================  ============================================================================

README, "Upgrade gate", shows each in use.
"""
