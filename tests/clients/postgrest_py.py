"""Drives the gateway with the real PostgREST Python client (PyPI `postgrest`).

Usage: python3 postgrest_py.py BASE_URL   (BASE_URL like http://127.0.0.1:8080)
Exits non-zero with a message on the first disagreement.
"""
import sys

from postgrest import SyncPostgrestClient

base = sys.argv[1].rstrip("/") + "/api/v1/data"
dataset = "consommations-energie-batiments"
client = SyncPostgrestClient(base)


def check(condition, message):
    if not condition:
        print("FAIL:", message, file=sys.stderr)
        sys.exit(1)


everything = client.from_(dataset).select("id,commune,conso_kwh").order("id").execute().data
check(len(everything) > 10, "the dataset has rows")

# select + eq + order + count
troyes = [row for row in everything if row["commune"] == "Troyes"]
response = (
    client.from_(dataset)
    .select("id,commune", count="exact")
    .eq("commune", "Troyes")
    .order("id", desc=True)
    .limit(5)
    .execute()
)
check(response.count == len(troyes), f"count {response.count} != {len(troyes)}")
check([row["id"] for row in response.data] == sorted((row["id"] for row in troyes), reverse=True)[:5], "eq + order desc + limit")

# in
response = client.from_(dataset).select("id,commune").in_("commune", ["Troyes", "Sainte-Savine"]).order("id").execute()
expected = [row["id"] for row in everything if row["commune"] in ("Troyes", "Sainte-Savine")]
check([row["id"] for row in response.data] == expected, "in_")

# or
response = client.from_(dataset).select("id").or_("commune.eq.Troyes,id.lt.3").order("id").execute()
expected = [row["id"] for row in everything if row["commune"] == "Troyes" or row["id"] < 3]
check([row["id"] for row in response.data] == expected, "or_")

# gt / lte
response = client.from_(dataset).select("id").gt("id", 5).lte("id", 9).order("id").execute()
check([row["id"] for row in response.data] == [6, 7, 8, 9], "gt + lte")

# range
response = client.from_(dataset).select("id").order("id").range(2, 6).execute()
check([row["id"] for row in response.data] == [row["id"] for row in everything[2:7]], "range")

# errors reach the client as PostgREST errors
try:
    client.from_(dataset).select("nope").execute()
    check(False, "an unknown column must fail")
except Exception as error:  # postgrest.exceptions.APIError
    check("nope" in str(error), f"the error names the column: {error}")

print("postgrest-py: all checks passed")
