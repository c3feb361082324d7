"""Policy engine: model, loader, matcher and the pure decide() function."""
