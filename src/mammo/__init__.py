"""mammo: mammography benign-vs-malignant classification, from download to explained prediction."""

__version__ = "0.1.0"
