"""Example domains shipped with the package: ``eventstore demo`` runs the bank one.

``eventstore --app eventstore.examples.bank ...`` makes its aggregates and events known
to the CLI, so every command can be tried on the demo's data.
"""
