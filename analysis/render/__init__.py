"""Rendering: the report's markdown sections, tables and figures, from tables already loaded and
computed.

Rule: never loads (imports no `analysis.load`); may use the transforms, statistics and model.
"""
