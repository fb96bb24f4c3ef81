"""Fill the demo shop with a deterministic catalogue, shoppers and weeks of behaviour."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from shop.demo.generator import SeedOptions, demo_data_exists, demo_logins, flush_demo_data, seed_demo


class Command(BaseCommand):
    help = "Generate the demo shop's catalogue, shoppers and events (deterministic for a given --seed)."

    def add_arguments(self, parser) -> None:
        defaults = SeedOptions()
        parser.add_argument("--users", type=int, default=defaults.users, help="number of shoppers")
        parser.add_argument("--events", type=int, default=defaults.events, help="about this many events")
        parser.add_argument("--days", type=int, default=defaults.days, help="days of history, ending now")
        parser.add_argument("--seed", type=int, default=defaults.seed, help="random seed")
        parser.add_argument("--products", type=int, default=defaults.products, help="catalogue size")
        parser.add_argument("--flush", action="store_true", help="delete the previous demo data first")
        parser.add_argument("--skip-if-seeded", action="store_true", help="do nothing when products exist")
        parser.add_argument("--print-logins", action="store_true", help="only print the demo logins")
        parser.add_argument(
            "--demo-logins",
            action="store_true",
            help="create the demo logins (an admin superuser and three shoppers) with their published "
            "passwords; only for a local demo (`make demo` passes it)",
        )

    def handle(self, *args, **options) -> None:
        if options["print_logins"]:
            self._print_logins()
            return
        if options["skip_if_seeded"] and demo_data_exists():
            self.stdout.write("Demo data already present; nothing to do.")
            return
        seed_options = SeedOptions(
            users=options["users"],
            events=options["events"],
            days=options["days"],
            seed=options["seed"],
            products=options["products"],
            demo_logins=options["demo_logins"],
        )
        try:
            seed_options.validate()
        except ValueError as error:
            raise CommandError(str(error)) from error
        if demo_data_exists():
            if not options["flush"]:
                raise CommandError(
                    "The shop already has products: use --flush to replace them "
                    "or --skip-if-seeded to keep them."
                )
            self.stdout.write("Deleting the previous demo data...")
            flush_demo_data()
        report = seed_demo(seed_options, progress=lambda message: self.stdout.write(f"  {message}"))
        self.stdout.write(
            self.style.SUCCESS(
                f"Seeded {report.products} products, {report.users} users, "
                f"{report.visitors} anonymous visitors, {report.events} events "
                f"and {report.orders} orders in {report.seconds:.1f} s."
            )
        )
        if seed_options.demo_logins:
            self._print_logins()
        else:
            self.stdout.write("No demo logins created (pass --demo-logins for a local demo).")

    def _print_logins(self) -> None:
        self.stdout.write("Demo logins:")
        for username, password, what in demo_logins():
            self.stdout.write(f"  {username} / {password}  ({what})")
