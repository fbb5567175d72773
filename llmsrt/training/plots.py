"""Loss curves of a training stage as PNG."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def save_loss_plot(log_history: list[dict], path: str | Path, title: str) -> Path | None:
    """Plot training (and evaluation, when logged) loss against the step; returns the path, or None without logs."""
    train = [(entry["step"], entry["loss"]) for entry in log_history if "loss" in entry]
    evaluation = [(entry["step"], entry["eval_loss"]) for entry in log_history if "eval_loss" in entry]
    if not train and not evaluation:
        return None
    figure, axis = plt.subplots(figsize=(6, 3.5))
    for points, label in ((train, "train loss"), (evaluation, "eval loss")):
        if points:
            steps, losses = zip(*points)
            axis.plot(steps, losses, marker="o" if len(points) < 30 else None, label=label)
    axis.set_xlabel("step")
    axis.set_ylabel("loss")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return Path(path)
