"""Profile factors: attributes of the client's row in ``clients`` (age, gender, tenure, opt-outs)."""
from __future__ import annotations

from factors.base import Factor
from factors.registry import register_all

THEME = "profile"

REGIONS = ("capital", "north", "south", "east", "west", "central")
"""The retailer's regions; each gets a 0/1 factor (a client of another region has all zeros)."""

FACTORS = [
    Factor("age", "Age of the client in whole years (as recorded in the client table).",
           "profile", "age", table="clients", columns=("age",), dtype="int64", default=0, theme=THEME),
    Factor("is_female", "1 when the client's gender is F, else 0.",
           "profile", "CASE WHEN gender = 'F' THEN 1 ELSE 0 END", table="clients",
           columns=("gender",), dtype="int8", default=0, theme=THEME),
    Factor("tenure_days", "Days from registration to the as-of date (fractional days).",
           "profile", "date_diff('second', CAST(registration_date AS TIMESTAMP), {as_of}) / 86400.0",
           table="clients", columns=("registration_date",), dtype="float64", default=0.0, theme=THEME),
    Factor("tenure_days_365", "Days from registration to the as-of date, capped at 365: new clients apart, "
           "without a value that keeps growing with the calendar (drift monitoring compares dates months apart).",
           "profile", "LEAST(date_diff('second', CAST(registration_date AS TIMESTAMP), {as_of}) / 86400.0, 365.0)",
           table="clients", columns=("registration_date",), dtype="float64", default=0.0, theme=THEME),
    Factor("tenure_days_1095", "Days from registration to the as-of date, capped at three years (1,095 days): how long "
           "a client has stayed, which says much about how soon they leave, while the long-standing tail of the base "
           "no longer keeps ageing with the calendar (drift monitoring compares dates months apart).",
           "profile", "LEAST(date_diff('second', CAST(registration_date AS TIMESTAMP), {as_of}) / 86400.0, 1095.0)",
           table="clients", columns=("registration_date",), dtype="float64", default=0.0, theme=THEME),
]
for _col, _what in (("email_opt_out", "e-mail"), ("sms_opt_out", "SMS"), ("push_opt_out", "mobile push"),
                    ("marketing_opt_out", "all marketing offers")):
    FACTORS.append(Factor(
        _col, f"1 when the client refused {_what}, else 0 (the client table's flag on the data's as-of date, not point-in-time: "
        "fine for filters, a leak when training on past campaigns).",
        "profile", f"CAST({_col} AS TINYINT)", table="clients", columns=(_col,), dtype="int8",
        default=0, theme=THEME))

for _r in REGIONS:
    FACTORS.append(Factor(
        f"region_{_r}", f"1 when the client's home store is in the {_r} region, else 0.",
        "profile", f"CASE WHEN CAST(region AS VARCHAR) = '{_r}' THEN 1 ELSE 0 END", table="clients",
        columns=("region",), dtype="int8", default=0, theme=THEME))

register_all(FACTORS)
