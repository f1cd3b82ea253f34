"""The built-in strategies; ``orchestrator.strategy.loader`` names them."""
