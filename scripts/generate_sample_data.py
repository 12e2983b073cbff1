"""Generate the demo domain's sample data (committed; rerun only to change it).

Deterministic: a fixed seed, so the committed files are reproducible byte for byte.
Usage: python scripts/generate_sample_data.py
"""

from __future__ import annotations

import csv
import random
from datetime import date, datetime, timedelta
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "etl_assets" / "sample_data"
CATEGORIES = [
    ("ELEC", "Electronics", "Hardware", "2025-01-15"),
    ("BOOK", "Books", "Media", "2025-02-01"),
    ("MUSC", "Music", "Media", "2025-02-01"),
    ("HOME", "Home & Garden", "Household", "2025-03-10"),
    ("TOYS", "Toys", "Household", "2025-03-10"),
    ("FOOD", "Groceries", "Consumables", "2025-04-20"),
    ("BEAU", "Beauty", "Consumables", "2025-05-05"),
    ("SPRT", "Sports", "Leisure", "2025-06-30"),
]
ROWS = 4000


def main() -> None:
    rng = random.Random(20260101)
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "categories.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["category_code", "category_name", "category_group", "사용일자"])
        writer.writerows(CATEGORIES)
    start = date(2026, 1, 1)
    with open(OUT / "raw_orders.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            ["order_id", "customer_id", "category_code", "status", "amount", "quantity",
             "order_date", "updated_at"]
        )
        for order_id in range(1, ROWS + 1):
            day = start + timedelta(days=rng.randrange(90))
            if day.weekday() >= 5 and rng.random() < 0.5:  # weekends see about half the orders
                day = start + timedelta(days=rng.randrange(90))
            customer = "" if rng.random() < 0.05 else str(rng.randrange(1, 400))
            amount = "" if rng.random() < 0.03 else f"{rng.lognormvariate(3.5, 0.9):.2f}"
            updated = datetime.combine(day, datetime.min.time()) + timedelta(
                seconds=rng.randrange(86400)
            )
            writer.writerow([
                order_id,
                customer,
                rng.choices([c[0] for c in CATEGORIES], weights=[5, 4, 2, 3, 2, 6, 2, 1])[0],
                "active" if rng.random() < 0.8 else "inactive",
                amount,
                rng.randint(1, 5),
                day.isoformat(),
                updated.isoformat(sep=" "),
            ])


def customers(count: int = 400) -> None:
    """The customer master: updated_at spread over the quarter, for the incremental load."""
    rng = random.Random(20260202)
    cities = ["Seoul", "Busan", "Incheon", "Daegu", "Daejeon", "Gwangju"]
    start = datetime(2026, 1, 1)
    with open(OUT / "customers.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["customer_id", "name", "city", "updated_at"])
        for customer in range(1, count):
            updated = start + timedelta(seconds=rng.randrange(90 * 86400))
            writer.writerow([customer, f"Customer {customer:03d}", rng.choice(cities),
                             updated.isoformat(sep=" ")])


def shrunk(keep: int = 1000) -> None:
    """The first `keep` orders: a load that lost most of its rows, for the anomaly demo."""
    lines = (OUT / "raw_orders.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    (OUT / "raw_orders_shrunk.csv").write_text("".join(lines[: keep + 1]), encoding="utf-8")


if __name__ == "__main__":
    main()
    customers()
    shrunk()
