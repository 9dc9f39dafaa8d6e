"""Write the demo's synthetic sample data (deterministic): ``python samples/generate.py``.

An outdoor-gear shop: 60 catalogue items, 40 members, 320 storefront events over 48 sessions, 12 promotional
actions and 44 action interactions, plus a handful of deliberately broken records listed in ``broken.json`` with
the rejection code each one must get. The files are committed; rerun only to change them.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
START = 1_764_400_000  # 2025-11-29T07:06:40Z
CATEGORIES = ["tents", "sleeping-bags", "backpacks", "stoves", "lights", "jackets", "boots", "water"]
BRANDS = ["Northpeak", "Trailhead", "Cairn & Co", "Riverstone", "Alpenglow"]
EVENT_TYPES = [("view", 0.62), ("add-to-cart", 0.2), ("purchase", 0.08), ("wishlist", 0.1)]


def _items(rng: random.Random) -> list[dict[str, str]]:
    rows = []
    for n in range(1, 61):
        category = CATEGORIES[n % len(CATEGORIES)]
        secondary = rng.choice([c for c in CATEGORIES if c != category])
        rows.append(
            {
                "ITEM_ID": f"sku-{n:04d}",
                "CATEGORY_L1": f"{category}|{secondary}" if n % 5 == 0 else category,
                "BRAND": rng.choice(BRANDS),
                "PRICE": f"{rng.uniform(9, 420):.2f}",
                "CREATION_TIMESTAMP": str(START - rng.randint(86_400, 90 * 86_400)),
            }
        )
    return rows


def _users(rng: random.Random) -> list[dict[str, object]]:
    return [
        {
            "userId": f"member-{n:03d}",
            "properties": {
                "membership": rng.choice(["basic", "basic", "plus", "pro"]),
                "homeRegion": rng.choice(["alps", "coast", "lakes", "highlands", "city"]),
                "ageGroup": rng.choice(["18-24", "25-34", "35-44", "45-54", "55+"]),
            },
        }
        for n in range(1, 41)
    ]


def _events(rng: random.Random) -> list[dict[str, object]]:
    events: list[dict[str, object]] = []
    clock = START
    for session in range(1, 49):
        # About one session in six is an anonymous visitor: PutEvents needs a session id, not a user id.
        user = None if session % 6 == 0 else f"member-{rng.randint(1, 40):03d}"
        clock += rng.randint(30, 900)
        for _ in range(rng.randint(4, 9)):
            if len(events) == 320:
                break
            clock += rng.randint(2, 120)
            kind = rng.choices([k for k, _ in EVENT_TYPES], [w for _, w in EVENT_TYPES])[0]
            event: dict[str, object] = {"sessionId": f"web-{session:04d}"}
            if user:
                event["userId"] = user
            event.update({"eventType": kind, "itemId": f"sku-{rng.randint(1, 60):04d}", "sentAt": clock})
            if kind == "purchase":
                event["eventValue"] = round(rng.uniform(9, 420), 2)
            if rng.random() < 0.3:
                event["properties"] = {"device": rng.choice(["mobile", "desktop", "tablet"])}
            events.append(event)
    return events


def _actions(rng: random.Random) -> list[dict[str, object]]:
    names = [
        "free-shipping",
        "winter-sale",
        "tent-bundle",
        "loyalty-bonus",
        "repair-kit-gift",
        "newsletter",
        "trail-guide",
        "rental-offer",
        "trade-in",
        "gift-card",
        "early-access",
        "workshop-invite",
    ]
    return [
        {
            "actionId": f"act-{name}",
            "properties": {"channel": rng.choice(["email", "web", "app"]), "value": rng.choice(["low", "high"])},
        }
        for name in names
    ]


def _action_interactions(rng: random.Random, actions: list[dict[str, object]]) -> list[dict[str, object]]:
    rows = []
    for n in range(44):
        user = f"member-{rng.randint(1, 40):03d}"
        rows.append(
            {
                "actionId": rng.choice(actions)["actionId"],
                "userId": user,
                "sessionId": f"app-{user}-{n // 4}",
                "eventType": rng.choice(["Viewed", "Taken", "Not taken"]),
                "timestamp": START + 3_600 + n * 97,
            }
        )
    return rows


def _insert(lines: list[str], broken: dict[int, tuple[str, str]]) -> tuple[list[str], dict[str, str]]:
    """Insert broken lines at 1-based line numbers; return the lines and {line: expected code}."""
    expected = {}
    for line_number in sorted(broken):
        text, code = broken[line_number]
        lines.insert(line_number - 1, text)
        expected[str(line_number)] = code
    return lines, expected


def main() -> None:
    rng = random.Random(20251129)
    manifest: dict[str, dict[str, str]] = {}

    events = [json.dumps(e) for e in _events(rng)]
    events, manifest["events.jsonl"] = _insert(
        events,
        {
            23: (
                '{"sessionId": "web-0005", "eventType": "view", "itemId": "sku-0012", "sentAt": 17644',
                "invalid_json",
            ),
            # Neither sessionId nor userId (a userId alone would stand in for the session).
            61: (
                json.dumps({"eventType": "view", "itemId": "sku-0002", "sentAt": START + 4_000}),
                "missing_field",
            ),
            118: (
                json.dumps(
                    {"sessionId": "web-0022", "eventType": "view", "itemID": "sku-0031", "sentAt": START + 9_000}
                ),
                "unknown_field",
            ),
            175: (
                json.dumps(
                    {"sessionId": "web-0031", "eventType": "view", "itemId": "sku-0044", "sentAt": "yesterday"}
                ),
                "invalid_timestamp",
            ),
            240: (
                json.dumps(
                    {
                        "sessionId": "web-0040",
                        "eventType": "purchase",
                        "itemId": "sku-0009",
                        "sentAt": START + 30_000,
                        "properties": {"eventType": "gift"},
                    }
                ),
                "forbidden_property",
            ),
        },
    )
    (HERE / "events.jsonl").write_text("\n".join(events) + "\n", encoding="utf-8")

    items = _items(rng)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(items[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(items)
    csv_lines = buffer.getvalue().splitlines()
    csv_lines, manifest["items.csv"] = _insert(
        csv_lines,
        {
            # Line numbers count the header as line 1, as the functions' rejections do.
            17: (",tents,Northpeak,129.00,1760000000", "missing_field"),
            44: ("sku-" + "9" * 300 + ",stoves,Trailhead,49.00,1760000000", "too_long"),
        },
    )
    (HERE / "items.csv").write_text("\n".join(csv_lines) + "\n", encoding="utf-8")

    users = [json.dumps(u) for u in _users(rng)]
    users, manifest["users.jsonl.gz"] = _insert(
        users,
        {
            9: ('{"userId": "member-900", "properties": {"membership": "plus"', "invalid_json"),
            30: (json.dumps({"userId": "member-901", "propertis": {"membership": "basic"}}), "unknown_field"),
        },
    )
    # NOTE: mtime=0 keeps the gzip bytes identical between runs of this script.
    (HERE / "users.jsonl.gz").write_bytes(gzip.compress(("\n".join(users) + "\n").encode(), mtime=0))

    action_list = _actions(rng)
    actions = [json.dumps(a) for a in action_list]
    actions, manifest["actions.jsonl"] = _insert(
        actions, {7: (json.dumps({"properties": {"channel": "email"}}), "missing_field")}
    )
    (HERE / "actions.jsonl").write_text("\n".join(actions) + "\n", encoding="utf-8")

    interactions = [json.dumps(i) for i in _action_interactions(rng, action_list)]
    interactions, manifest["action_interactions.jsonl"] = _insert(
        interactions,
        {
            12: (
                json.dumps(
                    {
                        "userId": "member-003",
                        "sessionId": "app-member-003-9",
                        "eventType": "Taken",
                        "timestamp": START + 5_000,
                    }
                ),
                "missing_field",
            ),
            35: (
                json.dumps(
                    {
                        "actionId": "act-winter-sale",
                        "userId": "member-011",
                        "sessionId": "app-x",
                        "eventType": "Viewed",
                        "timestamp": "not-a-time",
                    }
                ),
                "invalid_timestamp",
            ),
        },
    )
    (HERE / "action_interactions.jsonl").write_text("\n".join(interactions) + "\n", encoding="utf-8")

    (HERE / "broken.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
