"""The versioned migrations, `NNNN_name.sql`, applied in order by `storage/schema.py`."""
