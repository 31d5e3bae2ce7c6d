"""The data stage: reading tables, validating texts and labels, loading tasks and files, tokenizing, long documents.

- :mod:`~textclf.data.tables`: the one table reader (CSV, TSV, JSON Lines, JSON, Parquet; texts always strings);
- :mod:`~textclf.data.validation`: text and label checks with one-line errors, label encoding;
- :mod:`~textclf.data.loading`: registry tasks (mirror or Hub) and user files as ``TaskData``;
- :mod:`~textclf.data.tokenization`: tokenizing a split for the Trainer;
- :mod:`~textclf.data.longdoc`: head, head+tail and chunked windows for texts longer than the model's input.
"""
