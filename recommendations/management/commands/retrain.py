"""``manage.py retrain``: run one training synchronously (the same service as the Celery task)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from recommendations.models import ModelVersion, TrainingRun
from recommendations.runtime.priority import lower_cpu_priority
from recommendations.services.training import train_model

METRIC_COLUMNS = ("NDCG@10", "HR@10", "MRR@10", "coverage@10")
# Exit status per outcome that produced no version (0 = a version was registered).
EXIT_CODES: dict[str, int] = {
    TrainingRun.Status.FAILED: 1,
    TrainingRun.Status.SKIPPED: 2,
    TrainingRun.Status.NOT_ENOUGH_DATA: 3,
}


def metrics_table(version: ModelVersion) -> str:
    """The new model, each baseline and the previously active version on the same holdout."""
    rows: list[tuple[str, dict[str, Any]]] = [(f"new model v{version.number}", version.metrics or {})]
    for name, metrics in sorted((version.baseline_metrics or {}).items()):
        rows.append((name, metrics or {}))
    if version.active_metrics is not None and version.compared_with is not None:
        rows.append((f"active v{version.compared_with.number}", version.active_metrics))
    width = max(len(name) for name, _ in rows)
    lines = [f"{'model':<{width}}  " + "  ".join(f"{c:>11}" for c in METRIC_COLUMNS)]
    for name, metrics in rows:
        cells = []
        for column in METRIC_COLUMNS:
            value = metrics.get(column)
            cells.append(f"{value:>11.4f}" if isinstance(value, int | float) else f"{'—':>11}")
        lines.append(f"{name:<{width}}  " + "  ".join(cells))
    return "\n".join(lines)


class Command(BaseCommand):
    help = (
        "Train a new version of the behaviour network now, print its metrics next to the baselines "
        "and the active version, and say whether it was promoted. Exit status: 0 a version was "
        "registered, 1 the run failed, 2 another training was running, 3 not enough data."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--window-days",
            type=int,
            default=None,
            help="Train on the events of the N days up to the newest stored event "
            "(default: TRAINING_WINDOW_DAYS).",
        )

    def _progress_printer(self) -> Callable[[str, float], None]:
        """Print each training stage at every 10 % step (to stderr, so stdout stays the report)."""
        last: dict[str, int] = {}

        def report(stage: str, fraction: float) -> None:
            step = int(max(0.0, min(fraction, 1.0)) * 10)
            if last.get(stage) != step:
                last[stage] = step
                self.stderr.write(f"  {stage}: {step * 10}%")

        return report

    def handle(self, *args: Any, **options: Any) -> None:
        window = options["window_days"]
        if window is not None and window < 1:
            raise CommandError("--window-days must be a positive number of days")
        self.stdout.write("Training the behaviour network…")
        lower_cpu_priority()
        run = train_model(triggered_by="command", window_days=window, progress=self._progress_printer())
        timings = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in (run.timings or {}).items())
        self.stdout.write(
            f"Run {run.pk}: {run.status}; {run.event_count or 0} events, {run.user_count or 0} shoppers, "
            f"{run.item_count or 0} items" + (f" ({timings})" if timings else "")
        )
        version = run.model_version
        if version is None:
            first_line = (run.error or run.status).splitlines()[0]
            raise CommandError(f"No new version: {first_line}", returncode=EXIT_CODES.get(run.status, 1))
        self.stdout.write(metrics_table(version))
        if version.status == ModelVersion.Status.ACTIVE:
            self.stdout.write(
                self.style.SUCCESS(f"Promoted: v{version.number} is active. {version.status_reason}")
            )
        else:
            self.stdout.write(
                self.style.WARNING(
                    f"Not promoted: v{version.number} stays a candidate. {version.status_reason}"
                )
            )
