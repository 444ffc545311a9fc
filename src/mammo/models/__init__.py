"""Models: one registry (name -> builder), each model carrying its preprocessing defaults."""

from mammo.models.registry import (
    ModelInfo,
    create_model,
    get_model_info,
    list_models,
    models_table,
    register_model,
)

__all__ = ["ModelInfo", "create_model", "get_model_info", "list_models", "models_table", "register_model"]
