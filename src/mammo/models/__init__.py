"""Models: one registry (name -> builder), each model carrying its preprocessing defaults."""
