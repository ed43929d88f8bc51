#!/usr/bin/env python3
"""Generates catalog/register-demo.csv: a synthetic inventory spreadsheet of
653 datasets whose totals reproduce, exactly, the tables of the authority's
internal audit (Troyes Champagne Métropole, 2023): by collectivité, by
direction, by theme, by source, by sharing and by confidentiality.

The file looks like the spreadsheet an authority would export from its
office suite: French headers, `;` separator, Windows-1252, CRLF. Every title
is invented; the combinations of values are drawn from a seeded generator
(standard library only), so running this script again gives a byte-identical
file. `passerelle register import catalog/register-demo.csv` loads it as
metadata-only entries (access `undecided`: the spreadsheet decides no
access level), and the test `tests/api/register.rs` checks that
`/api/v1/inventory` gives back the audit's tables.

    python3 catalog/generate_register.py        # from the repository root
"""

import csv
import io
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
TOTAL = 653

# The audit's tables (labels without their "(Ex : …)" examples).
ORGANISATIONS = {
    "C.M.A.S.": 14,
    "Troyes Champagne Métropole": 341,
    "Ville de Troyes": 207,
    "Ville de Troyes / Troyes Champagne Métropole": 91,
}
DIRECTIONS = {
    "Action foncière": 3,
    "Administration du Pôle Famille & Proximité": 6,
    "Affaires juridiques – Contentieux – Assemblées": 8,
    "Aménagement Economique (Service)": 3,
    "Centre de Supervision Urbain": 5,
    "Circulation - Stationnement - Régie voirie": 38,
    "CMAS (Direction Générale)": 14,
    "Commande publique - Achats transversaux": 13,
    "Coordination des événementiels et commémorations": 6,
    "Culture - Labels et Patrimoine - Vie associative": 25,
    "Développement durable - Climat - Energie": 150,
    "Eau – Trame Hydraulique – Réseaux de chaleur TCM + Régie Assainissement": 36,
    "Emploi - Insertion": 4,
    "Enfance - Education - Jeunesse": 24,
    "Enseignement supérieur – Recherche – Vie étudiante": 14,
    "Gestion et prévention des déchets": 4,
    "Médiathèque Jacques-Chirac": 1,
    "Mobilités": 22,
    "Moyens Généraux": 9,
    "ODP (Service)": 13,
    "Patrimoine Bâti": 39,
    "Protocole": 3,
    "Requalification des espaces publics": 11,
    "Ressources Humaines": 21,
    "Sports": 14,
    "Systèmes d'information": 74,
    "Urbanisme - Développement urbain": 6,
    "Vie quotidienne": 11,
    "Autres": 76,
}
THEMES = {
    "Administration": 109,
    "Assainissement - Eau - Trame Hydraulique": 46,
    "Culture": 22,
    "Economie & Société": 34,
    "Education – Enfance": 22,
    "Energie & Climat / Dév. Durable": 205,
    "Enseignement supérieur": 13,
    "Espace Public": 14,
    "Patrimoine": 19,
    "Sécurité": 49,
    "Sports": 16,
    "Urbanisme-Habitat": 104,
}
SOURCES = {"Interne": 450, "Externe": 189, "Interne/Externe": 14}
SHARING = {"Oui": 452, "Non": 160, "À définir": 41}
CONFIDENTIALITY = {"Non": 449, "Oui": 132, "À définir": 72}

# Grounds given to confidential lines (the audit asked "how do we qualify
# closed data?": these are the answers a register records).
GROUNDS = [
    "personal_data",
    "business_secret",
    "public_security",
    "third_party_rights",
    "unfinished_document",
    "environment_protection",
]
FREQUENCIES = ["annual", "monthly", "quarterly", "weekly", "daily", "irregular"]
SUBJECTS = [
    "Suivi annuel", "Suivi mensuel", "Tableau de bord", "Statistiques",
    "Indicateurs", "Bilan", "Relevés", "Registre", "Inventaire", "Suivi",
]

HEADER = [
    "Identifiant", "Titre", "Collectivité", "Direction", "Thématique",
    "Source des données", "Partage des données", "Confidentialité des données",
    "Motifs de confidentialité", "Coût", "Fréquence de mise à jour",
]


def expand(table):
    values = [label for label, count in table.items() for _ in range(count)]
    assert len(values) == TOTAL, (table, len(values))
    return values


def main():
    rng = random.Random(20231114)
    directions = expand(DIRECTIONS)
    # The CMAS's own direction belongs to the CMAS: its 14 lines are the
    # collectivité's 14; the other collectivités are spread over the rest.
    rest = [org for org in expand(ORGANISATIONS) if org != "C.M.A.S."]
    rng.shuffle(rest)
    organisations = []
    for direction in directions:
        organisations.append("C.M.A.S." if direction == "CMAS (Direction Générale)" else rest.pop())
    columns = {}
    for name, table in [
        ("theme", THEMES),
        ("source", SOURCES),
        ("sharing", SHARING),
        ("confidentiality", CONFIDENTIALITY),
    ]:
        values = expand(table)
        rng.shuffle(values)
        columns[name] = values
    output = io.StringIO(newline="")
    writer = csv.writer(output, delimiter=";", lineterminator="\r\n")
    writer.writerow(HEADER)
    for index in range(TOTAL):
        theme = columns["theme"][index]
        confidentiality = columns["confidentiality"][index]
        grounds = rng.choice(GROUNDS) if confidentiality == "Oui" else ""
        writer.writerow([
            f"registre-{index + 1:04d}",
            f"{rng.choice(SUBJECTS)} {theme.lower()} n° {index + 1}",
            organisations[index],
            directions[index],
            theme,
            columns["source"][index],
            columns["sharing"][index],
            confidentiality,
            grounds,
            rng.choice(["", "", "Temps agent", "Abonnement fournisseur", "Inclus dans un marché"]),
            rng.choice(FREQUENCIES),
        ])
    with open(os.path.join(HERE, "register-demo.csv"), "wb") as file:
        file.write(output.getvalue().encode("cp1252"))


if __name__ == "__main__":
    main()
