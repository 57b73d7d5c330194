"""GPU-aware core: runtime, item embedding, encoders, losses, scoring, metrics, train loop, checkpoints.

Never imports typer, rich or yaml (a test enforces this).
"""
