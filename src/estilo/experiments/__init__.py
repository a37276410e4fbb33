"""Experiments: a grid or list of runs, executed resumably (locally or on Ray), and a report.

Needs the ``experiments`` extra (matplotlib) for reports and ``ray`` for ``--executor ray``.
"""
