"""The evalkit dashboard's shared code: data loading (``loaders``), cached read-only store
access (``access``), page scaffolding (``ui``) and figures (``charts``)."""
