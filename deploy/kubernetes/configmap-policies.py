#!/usr/bin/env python3
"""Writes configmap-policies.yaml from the repository's policies/ (run it after
changing a policy file; tests/api/operations.rs checks that they match)."""
import os

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TARGET = os.path.join(HERE, "configmap-policies.yaml")

head = open(TARGET).read().split("\ndata:\n", 1)[0]
out = [head, "data:"]
for name in ("model.conf", "policy.csv"):
    text = open(os.path.join(ROOT, "policies", name)).read()
    out.append(f"  {name}: |" + ("" if text.endswith("\n") else "-"))
    out.extend(("    " + line) if line else "" for line in text.rstrip("\n").split("\n"))
open(TARGET, "w").write("\n".join(out) + "\n")
