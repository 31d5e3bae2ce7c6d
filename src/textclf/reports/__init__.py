"""The reports stage: what a person reads after a run, rebuilt from the run directory alone.

- :mod:`~textclf.reports.rundir`: the run directory's files, written and read back;
- :mod:`~textclf.reports.plots`: learning curves, confusion matrix, reliability diagram, regression scatter;
- :mod:`~textclf.reports.markdown`: Markdown tables;
- :mod:`~textclf.reports.modelcard`: ``model/README.md`` in the Hub's model-card format;
- :mod:`~textclf.reports.summary`: ``report.md`` and :func:`~textclf.reports.summary.build_report` (all of the above).
"""
