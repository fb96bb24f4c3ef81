"""``manage.py evaluate PATH``: offline evaluation on an events CSV (docs/evaluation.md);
``manage.py evaluate --replay --version V``: a version's click rate replayed on logged, explored
impressions (docs/experiments.md, "Off-policy replay")."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from recommendations.conf import network_config
from recommendations.core.dataset import EventLog
from recommendations.core.evaluation import evaluate, protocol_split
from recommendations.core.recommender import BehaviorRecommender
from recommendations.services.holdout_scoring import baseline_recommenders, recommender_fn


class Command(BaseCommand):
    help = (
        "Evaluate the behaviour network and the built-in baselines (popularity, co-visitation) on an "
        "events CSV (header user_id,item_id,event_type,timestamp[,value]) with the project's protocol: "
        "iterative k-core, one held-out item per user, full ranking. Prints one table. With --replay "
        "--version V: estimate version V's clicks per list from the logged, explored impressions (IPS and "
        "self-normalised IPS with intervals)."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        # ``--version V`` names the model version to replay: it replaces Django's own --version
        # (the framework's version, which no one asks this command for)
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", nargs="?", help="Events CSV file (not with --replay).")
        parser.add_argument("--k-core", type=int, default=5, help="Iterative k-core on (user, item) pairs.")
        parser.add_argument(
            "--mode",
            choices=("novel", "any"),
            default="novel",
            help="novel: the last new item is the target and history is masked; any: repeats count.",
        )
        parser.add_argument("--k", type=int, default=10, help="Cut-off of the metrics.")
        replay = parser.add_argument_group("off-policy replay")
        replay.add_argument("--replay", action="store_true", help="Replay a version on logged impressions.")
        replay.add_argument("--version", type=int, dest="version_number", help="The model version's number.")
        replay.add_argument("--placement", default="", help="Only this placement's lists (default: all).")
        replay.add_argument("--days", type=int, default=30, help="Impressions of the last DAYS days.")
        replay.add_argument("--interval", choices=("normal", "bootstrap"), default="normal")

    def _replay(self, options: dict[str, Any]) -> None:
        from recommendations.services.replay import UnknownVersion, replay_version

        if options["version_number"] is None:
            raise CommandError("--replay needs --version V (the number of the model version to judge)")
        if options["days"] < 1:
            raise CommandError("--days must be at least 1")
        try:
            report = replay_version(
                options["version_number"],
                placement=options["placement"] or None,
                days=options["days"],
                interval=options["interval"],
            )
        except UnknownVersion as exc:
            raise CommandError(str(exc)) from exc
        estimate = report.estimate
        if estimate.lists == 0:
            raise CommandError(
                "no explored impressions to replay: set RECOMMENDER['EXPLORATION_SHARE'] above 0 "
                "and serve traffic first"
            )
        self.stdout.write(
            f"Version {report.version_number} replayed on {estimate.lists} logged lists "
            f"({estimate.matched} matching positions, {estimate.effective_lists:,.0f} effective lists)"
        )
        self.stdout.write(f"{'estimator':<10}  {'clicks/list':>11}  {'95 % interval':>20}")
        for name, value in (("IPS", estimate.ips), ("SNIPS", estimate.snips)):
            self.stdout.write(f"{name:<10}  {value.value:>11.4f}  [{value.low:>8.4f}, {value.high:>8.4f}]")
        self.stdout.write(f"{'logged':<10}  {report.logged_clicks_per_list:>11.4f}  (the lists as served)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["replay"]:
            self._replay(options)
            return
        if not options["path"]:
            raise CommandError("name an events CSV file, or use --replay --version V")
        path = Path(options["path"])
        k, k_core, mode = options["k"], options["k_core"], options["mode"]
        if k < 1 or k_core < 1:
            raise CommandError("--k and --k-core must be at least 1")
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        try:
            log = EventLog.from_csv(path)
        except ValueError as exc:  # names the file and the line
            raise CommandError(str(exc)) from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"{path}: cannot be read ({exc})") from exc
        self.stdout.write(f"{len(log)} events read from {path}; splitting ({mode}, {k_core}-core)…")
        split = protocol_split(log, k_core=k_core, mode=mode)
        if not split.test:
            raise CommandError(f"no user is left after the {k_core}-core filter: nothing to evaluate")

        config = network_config()
        config.mode = mode
        rows: list[tuple[str, dict[str, Any], float]] = []
        started = time.perf_counter()
        self.stdout.write("Training the behaviour network…")
        network = BehaviorRecommender(config).fit(split.train)
        candidates = {"behaviour network": recommender_fn(network)}
        candidates.update(baseline_recommenders(split.train, config))
        fit_seconds = time.perf_counter() - started
        for name, fn in candidates.items():
            began = time.perf_counter()
            metrics = evaluate(fn, split.train, split.test, mask_history=split.mask_history, k=k)
            rows.append((name, metrics, time.perf_counter() - began))
        self.stdout.write(self._table(rows, k, users=len(split.test)))
        self.stdout.write(f"Network fitted in {fit_seconds:.1f}s.")

    @staticmethod
    def _table(rows: list[tuple[str, dict[str, Any], float]], k: int, *, users: int) -> str:
        columns = (f"NDCG@{k}", f"HR@{k}", f"MRR@{k}", f"coverage@{k}")
        width = max(len("model"), *(len(name) for name, _, _ in rows))
        lines = [f"{'model':<{width}}  " + "  ".join(f"{c:>11}" for c in columns)]
        for name, metrics, _seconds in rows:
            lines.append(f"{name:<{width}}  " + "  ".join(f"{float(metrics[c]):>11.4f}" for c in columns))
        lines.append(f"({users} test users, full ranking)")
        return "\n".join(lines)
