"""Presentation: figures, tables, widgets, the command line and the Sphinx helpers; only draws and prints."""
